"""``hcompile tune MODEL``: search for faster CPU code for the model's operators (MetaSchedule).

Records go to a persistent database in the user cache dir (one per target). A searched
record that beats the schedule rules is kept only if the whole model runs faster with it;
every later ``hcompile compile`` for the same CPU applies the kept records automatically, for
this model and any other with the same operator shapes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hcompile.cli.bench_cmd import parse_shapes


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="tune the model's CPU code; later compiles reuse the records")
    p.add_argument("model", type=Path, metavar="MODEL.onnx")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="static shape for an input (repeatable)")
    p.add_argument("--trials", type=int, default=64,
                   help="measured candidates per operator (default 64)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop starting new operators after this long")
    p.add_argument("--retune", action="store_true",
                   help="tune operators that already have records too")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def _fmt(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def run(args: argparse.Namespace) -> int:
    from hcompile.errors import UsageError
    from hcompile.tuning.tune import tune_model

    if not args.model.is_file():
        raise UsageError(f"{args.model} does not exist", hint="give an ONNX model file")

    def progress(done: int, total: int, name: str, elapsed: float, eta: float) -> None:
        if args.quiet:
            return
        width = 24
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r[{bar}] {done}/{total} {name[:32]:<32} elapsed {_fmt(elapsed)} "
              f"ETA {_fmt(eta)}", end="\n" if done == total else "", file=sys.stderr, flush=True)

    report = tune_model(args.model, input_shapes=parse_shapes(args.input_shape) or None,
                        trials=args.trials, minutes=args.minutes, progress=progress)
    if not args.quiet and report.tuned and len(report.tuned) + len(report.skipped_budget):
        print(file=sys.stderr)
    serial = f" ({len(report.serial)} searched single-threaded, as the rules run them)"
    print(f"tuned {len(report.tuned)} operator(s) in {_fmt(report.seconds)}"
          f"{serial if report.serial else ''}; {len(report.skipped_known)} already had records"
          + (f"; {len(report.skipped_budget)} left for lack of time (run again to continue)"
             if report.skipped_budget else ""))
    check = report.validation
    if check.kept or check.dropped:
        overall = f" (model {check.ratio:.2f}x the rules' time)" if check.ratio else ""
        print(f"kept {len(check.kept)} searched record(s) that made the whole model faster"
              f"{overall}; {len(check.dropped)} did not and are not applied "
              f"({check.compiles} test compiles, {_fmt(check.seconds)})")
    if check.rules_best:
        print(f"{len(check.rules_best)} operator(s) keep the schedule rules (no faster "
              f"candidate found)")
    print(f"database: {report.database}")
    return 0
