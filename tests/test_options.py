"""Every run option is declared once (bench/options.py): the command line's flags, bench.run's keywords and
defaults, RunConfig's defaults and a suite file's [black_box] keys all come from that declaration."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

import bench
from bench.cli import build_parser
from bench.execute.config import RunConfig, make_config
from bench.inputs import suites
from bench.options import OPTIONS, RUN_OPTIONS, add_arguments, check_keywords, from_args


def _run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_flag_of_run_is_a_declared_option_with_its_default():
    actions = {a.dest: a for a in _run_parser()._actions if a.option_strings and a.dest != "help"}
    declared = {o.name: o for o in RUN_OPTIONS if o.cli_flag}
    assert set(actions) == set(declared)
    for name, action in actions.items():
        assert action.option_strings == [declared[name].cli_flag]
        assert action.default == declared[name].cli.get("default", declared[name].default), name
        assert action.help == declared[name].help


def test_bench_run_takes_every_option_with_its_declared_default():
    parameters = inspect.signature(bench.run).parameters
    assert list(parameters) == [o.name for o in RUN_OPTIONS]
    assert all(parameters[o.name].default == o.default for o in RUN_OPTIONS)
    assert all(f"``{o.name}``" in bench.run.__doc__ for o in RUN_OPTIONS)
    with pytest.raises(TypeError, match="did you mean 'seed'"):
        bench.run(sed=1)


def test_run_config_defaults_are_the_declared_ones():
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    resolved = {"seed"}  # RunConfig holds the seed a run takes: the option's None means "not given", so 0
    for option in RUN_OPTIONS:
        if option.name in fields and option.name not in resolved \
                and fields[option.name].default is not dataclasses.MISSING:
            assert fields[option.name].default == option.default, option.name


def test_the_command_line_and_python_build_the_same_config():
    parsed = _run_parser().parse_args(["--suite", "fmnist", "--explainers", "gce,svae", "saliency", "--seeds", "1,2",
                                       "--set", "gce.lam=0.1", "--no-cache", "--precision", "fp32"])
    from_cli = make_config(check_keywords(from_args(parsed)))
    from_python = make_config(check_keywords(dict(suite="fmnist", explainers=["gce", "svae", "saliency"],
                                                  seeds=[1, 2], settings={"gce": {"lam": 0.1}}, cache=False,
                                                  precision="fp32")))
    assert from_cli == from_python
    assert from_cli.config.explainers == ("gce", "svae", "saliency") and from_cli.seeds == (1, 2)


def test_a_suite_files_black_box_keys_are_the_options_that_describe_a_black_box():
    assert suites._BLACK_BOX == {"classifier": str, "weights": str, "output": str}
    assert {o.suite_key for o in RUN_OPTIONS if o.suite_key} == set(suites._BLACK_BOX)
    assert suites.OUTPUTS == tuple(OPTIONS["classifier_output"].cli["choices"])


def test_a_new_declaration_reaches_the_command_line():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ["rescore", "seed", "seeds"])
    assert from_args(parser.parse_args(["--rescore", "--seeds", "3,4"])) == {"seed": None, "seeds": (3, 4),
                                                                              "rescore": True}
    with pytest.raises(SystemExit):  # one mutually exclusive group, from the declarations' group
        parser.parse_args(["--seed", "1", "--seeds", "2,3"])
