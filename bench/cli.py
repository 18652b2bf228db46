"""The command line: ``python -m bench run|list|suite|leaderboard|report|baseline|compare|cache``.

The parser is built in a function; choices come from the registries; a
:class:`~bench.errors.BenchError` becomes ``error: ...`` on one line and exit
status 2, never a traceback; output into a pipe that closes early (``| head``)
ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path


def program_name(argv0: str | None = None) -> str:
    """How the program was invoked: ``python -m bench`` (argv[0] is the package's ``__main__.py``) or the
    console script's name (``genexbench``)."""
    name = Path(argv0 if argv0 is not None else sys.argv[0]).name
    return "python -m bench" if name in ("__main__.py", "") else name


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line, like every other error of the command line (the usage is
    one ``--help`` away); subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from bench import __version__
    from bench.options import add_arguments, choices, default

    parser = _Parser(prog=prog or program_name(),
                     description="genexbench: benchmark generative explainers of image classifiers")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train what is missing (cached), score, write results and a leaderboard")
    add_arguments(run)  # every flag from its declaration (bench.options)

    list_ = sub.add_parser("list", help="show suites, explainers and metrics")
    list_.add_argument("--json", action="store_true",
                       help="as JSON: suites with their profiles, explainers with capabilities, paper and origin, "
                            "metrics with direction, capability, unit and description")
    add_arguments(list_, ["plugins"])

    study = sub.add_parser("study", help="run (or resume) a parameter study: a grid of settings x seeds, or GCE's "
                                         "Algorithm 1, into one directory with a pooled table and figures")
    study.add_argument("study", metavar="NAME|FILE.toml",
                       help="a built-in study (gce-algorithm1, gce-sensitivity, ganmex-lambda) or a study file")
    study.add_argument("--size", default="small", help="small (a 2-core CPU, default) or full (the papers' size)")
    study.add_argument("--out", type=Path, help="study directory (default studies/<name>-<size>)")
    study.add_argument("--device", default=default("device"), choices=choices("device"))
    study.add_argument("--executor", default=default("executor"), choices=choices("executor"),
                       help="run each cell's seeds, fits and scorings as Ray tasks (grid studies)")
    study.add_argument("--ray-address", metavar="ADDRESS", help="with --executor ray: the cluster")

    suite = sub.add_parser("suite", help="show a suite as the run reads it (`suite show mnist`, "
                                         "`suite show my_suite.toml`): the file with inherit resolved, checked")
    suite_sub = suite.add_subparsers(dest="suite_command", required=True)
    show = suite_sub.add_parser("show", help="print the suite, resolved and checked, as a suite file (TOML) or JSON")
    show.add_argument("name", metavar="NAME|FILE.toml")
    show.add_argument("--json", action="store_true", help="as JSON")

    board = sub.add_parser("leaderboard", help="render a leaderboard from stored results (one or more runs)")
    board.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                       help="run directories (single- or multi-seed) or results.json files of one suite and profile")
    board.add_argument("--format", default="md", choices=["md", "csv", "html", "latex"])
    board.add_argument("--out", type=Path, help="write here instead of standard output")

    report = sub.add_parser("report", help="(re)write RUN_DIR/report.html from stored results")
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR")

    base = sub.add_parser("baseline", help="write a regression baseline from a run")
    base.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    base.add_argument("--out", type=Path, required=True, help="baseline file to write (JSON)")
    base.add_argument("--tolerance", metavar="SPEC",
                      help="floor/tolerance stored with the baseline (see compare); default none stored: compare "
                           "then uses the built-in floor (>= 3 seeds) or fixed tolerance (1-2 seeds)")

    cmp_ = sub.add_parser("compare", help="exit 0 if no metric got worse than the baseline, 1 if any did, "
                                          "2 for unusable input")
    cmp_.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    cmp_.add_argument("--baseline", type=Path, required=True, metavar="FILE")
    cmp_.add_argument("--tolerance", metavar="SPEC",
                      help="comma-separated PATTERN=VALUE (fnmatch over metric names; later wins) or VALUE; "
                           "VALUE absolute (0.02) or relative to the baseline (10%%); with a baseline of >= 3 seeds "
                           "the floor (minimum move that counts) of the noise-calibrated rule, with fewer the fixed "
                           "tolerance; default: the baseline's own, else the built-in one")
    cmp_.add_argument("--detect", metavar="SIZE",
                      help="report, per metric, the seeds per side needed to detect a change of SIZE (a spec like "
                           "--tolerance) with 80%% power at the Holm-adjusted level; default: the floor/tolerance")
    cmp_.add_argument("--format", default="text", choices=["text", "json"],
                      help="text (default): a table of every metric (verdict, baseline, run, delta, tolerance, the "
                           "worst value allowed, the test that decided), the worse first; json: the same data with "
                           "exit_code and rule")
    cmp_.add_argument("--rule", default="auto", choices=["auto", "fixed"],
                      help="auto (default): noise-calibrated with >= 3 baseline seeds (prediction bound or Welch, "
                           "Holm across metrics), fixed tolerance otherwise; fixed: the fixed-tolerance rule always")

    docs = sub.add_parser("docs", help="regenerate the measured numbers of README.md, docs/ and results/**/README.md "
                                       "from the committed results (bench/docs.py)")
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is out of date")

    cache = sub.add_parser("cache", help="what the cache of data and trained models holds (info), remove what no run "
                                         "will read (prune) or all of it (clear)")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    cache_sub.add_parser("info", help="where the cache is, and the count and size of its entries per kind (data per "
                                      "dataset, models per explainer fit, black box and FID feature network)")
    prune_help = ("remove entries no run will read: temporary files of interrupted writes (older than an hour), "
                  "files with names genexbench does not write, models of a kind no registered explainer fits, "
                  "checkpoints that do not load or hold another key than their name says, models whose training "
                  "code changed since (each stores the hash of its source). Models made by older settings "
                  "cannot be told apart (their name is a one-way hash): `cache clear` removes those")
    prune = cache_sub.add_parser("prune", help=prune_help, description=prune_help)
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    cache_sub.add_parser("clear", help="remove every cached dataset, model and score (the cache's data/, models/ and scores/), "
                                       "without asking; the next run downloads and trains afresh")
    return parser


def _cmd_leaderboard(args) -> int:
    from bench.outputs.leaderboard import render, run_records
    from bench.store import atomic_write_text

    text = render(run_records(args.runs), args.format)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_compare(args) -> int:
    from bench.gate import compare

    comparison = compare(args.runs, args.baseline, tolerance=args.tolerance, rule=args.rule)
    if args.format == "json":
        print(json.dumps(comparison.to_dict(args.detect, seeds_table=True), indent=1, allow_nan=False))
    else:
        print(comparison.report(args.detect, seeds_table=True, table=True))
    return comparison.exit_code


def listing() -> dict:
    """What ``list`` shows, as data: suites (with profiles), explainers (with capabilities and paper), metrics
    (with direction, capability, unit and description), each in registry order."""
    from bench.inputs.suites import SUITES
    from explainers.registry import EXPLAINERS
    from metrics import METRICS

    directions = {True: "higher is better", False: "lower is better", None: "diagnostic"}
    return {
        "suites": [{"name": s.name, "version": s.version, "dataset": s.dataset, "classes": list(s.classes or []),
                    "description": s.description, "profiles": list(s.profiles),
                    "default_explainers": list(s.default_explainers)} for s in SUITES.values()],
        "explainers": [{"name": name, "capabilities": sorted(c.value for c in cls.capabilities), "paper": cls.paper,
                        "origin": EXPLAINERS.origin(name)}
                       for name, cls in ((n, EXPLAINERS.get(n)) for n in EXPLAINERS.names())],
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better,
                     "direction": directions[m.higher_is_better], "capability": m.capability, "unit": m.unit,
                     "description": m.description}
                    for m in METRICS.values()],
    }


def _cmd_list(as_json: bool) -> int:
    data = listing()
    if as_json:
        print(json.dumps(data, indent=1, ensure_ascii=False))
        return 0
    width = lambda items, key: max((len(item[key]) for item in items), default=0)  # noqa: E731
    suites, explainers, metrics = data["suites"], data["explainers"], data["metrics"]
    print("suites:")
    for s in suites:
        print(f"  {s['name']:<{width(suites, 'name')}}  {s['description']} (profiles: {', '.join(s['profiles'])})")
    print("explainers:")
    caps = ["[" + (", ".join(e["capabilities"]) or "-") + "]" for e in explainers]
    cap_width = max(map(len, caps), default=0)
    for e, cap in zip(explainers, caps):
        origin = "" if e["origin"] == "built-in" else f" (from {e['origin']})"
        print(f"  {e['name']:<{width(explainers, 'name')}}  {cap:<{cap_width}}  {e['paper']}{origin}")
    print("metrics:")
    needs = [f"({m['direction']}; needs {m['capability']})" for m in metrics]
    need_width = max(map(len, needs), default=0)
    for m, need in zip(metrics, needs):
        arrow = {True: "↑", False: "↓", None: " "}[m["higher_is_better"]]
        print(f"  {m['name']:<{width(metrics, 'name')}}  {arrow}  {need:<{need_width}}  {m['description']}")
    return 0


def _cmd_cache(args) -> int:
    from bench import cache
    from bench.store import cache_root

    root = cache_root()
    if args.cache_command == "info":
        sys.stdout.write(cache.info_text(root))
    elif args.cache_command == "prune":
        found = cache.prune(root, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for entry, reason in found:
            print(f"{verb} {entry.path} ({cache.size_text(entry.size)}): {reason}")
        print(f"{verb} {len(found)} file(s), {cache.size_text(sum(e.size for e, _ in found))}, from {root}")
    else:
        found = cache.clear(root)
        for kind, count, size in cache.summary(found):
            print(f"removed {kind}: {count} file(s), {cache.size_text(size)}")
        print(f"removed {len(found)} file(s), {cache.size_text(sum(e.size for e in found))}, from {root}")
    return 0


def _dispatch(argv: list[str] | None) -> int:
    """Parse ``argv`` and run the command; its exit status (2 for a :class:`BenchError`)."""
    from bench.errors import BenchError

    from bench.progress import configure_logging

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        if args.command == "list":
            from explainers.registry import EXPLAINERS

            from bench.errors import user_errors

            with user_errors():  # an installed plugin that does not load is one line too
                for plugin in args.plugins:
                    EXPLAINERS.load_plugin(plugin)
                EXPLAINERS.names()
            return _cmd_list(args.json)
        if args.command == "cache":
            from bench.errors import user_errors

            with user_errors():
                return _cmd_cache(args)
        if args.command == "suite":
            from bench.errors import user_errors
            from bench.execute.steps import check_settings
            from bench.inputs.suites import get_suite, suite_dict, suite_toml
            from explainers.registry import EXPLAINERS

            found = get_suite(args.name)
            with user_errors():
                known = {name: EXPLAINERS.get(name) for name in EXPLAINERS.names()}
                known.update({name: found.explainer_class(name) for name in found.variants})
            for profile in found.profiles.values():  # the settings' names too, as a run checks them
                check_settings(found, profile, known)
            print(json.dumps(suite_dict(found), indent=1) if args.json else suite_toml(found), end="\n" if args.json else "")
            return 0
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "report":
            from bench.outputs.report import write_report

            print(write_report(args.run_dir))
            return 0
        if args.command == "baseline":
            from bench.gate import write_baseline

            print(write_baseline(args.runs, args.out, tolerance=args.tolerance))
            return 0
        if args.command == "compare":
            return _cmd_compare(args)
        if args.command == "docs":
            from bench.docs import main as docs_main

            return docs_main(["--check"] if args.check else [])
        if args.command == "study":
            from bench.execute.studies import run_study
            from bench.progress import log_to

            out = run_study(args.study, size=args.size, out=args.out, device=args.device, executor=args.executor,
                            ray_address=args.ray_address, log=log_to("bench.study"))
            table = out / "table.md"
            print(table.read_text() if table.exists() else "", end="")
            print(f"study written to {out}")
            return 0
        from bench.api import run
        from bench.options import from_args

        results = run(**from_args(args), progress=not args.quiet, command=[*parser.prog.split(), *argv])
        print(results.leaderboard("md"))
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no results were written for this run", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    """``python -m bench``: run the command in ``argv`` (default ``sys.argv[1:]``); its exit status.

    Output into a pipe whose reader closes early (``python -m bench leaderboard RUN | head -1``) ends the
    command quietly with status 141 = 128 + SIGPIPE, what the shell reports for a program SIGPIPE killed
    (Python ignores SIGPIPE, so the write raises BrokenPipeError instead; without this, a traceback).
    """
    try:
        try:
            return _dispatch(argv)
        finally:
            sys.stdout.flush()  # here, not at interpreter exit: a closed pipe fails inside the try (--help too)
    except BrokenPipeError:
        # stdout is unusable; point it at /dev/null so the interpreter's own flush at exit stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    raise SystemExit(main())
