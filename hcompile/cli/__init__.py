"""The ``hcompile`` command line. ``hcompile MODEL.onnx`` is ``hcompile compile MODEL.onnx``.

Exit codes: 0 ok; 2 user error (bad model, flags, inputs or artifact) with a one-paragraph
message and no traceback; 1 internal error with the traceback. ``HCOMPILE_DEBUG=1`` adds
tracebacks to user errors too, and IR dumps.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from hcompile.errors import HcompileError

COMMANDS = ("compile", "run", "inspect", "ops", "devices", "serve", "tune", "bench")


def build_parser() -> argparse.ArgumentParser:
    from hcompile import __version__
    from hcompile.cli import bench_cmd, compile_cmd, info_cmd, run_cmd, serve_cmd, tune_cmd
    from hcompile.devices import command as devices_cmd

    parser = argparse.ArgumentParser(
        prog="hcompile",
        description="Compile ONNX models to heterogeneous CPU/GPU/FPGA code and run them.",
        epilog="`hcompile MODEL.onnx ...` is short for `hcompile compile MODEL.onnx ...`.",
    )
    parser.add_argument("--version", action="version", version=f"hcompile {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    compile_cmd.add_parser(sub)
    run_cmd.add_parser(sub)
    info_cmd.add_parsers(sub)
    tune_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    serve_cmd.add_parser(sub)
    devices_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        args_list.insert(0, "compile")
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    _setup_logging(quiet=getattr(args, "quiet", False))
    debug = os.environ.get("HCOMPILE_DEBUG") == "1"
    try:
        return int(args.handler(args) or 0)
    except HcompileError as err:
        if debug:
            traceback.print_exc()
        print(f"hcompile: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hcompile: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("hcompile: internal error (a bug in hcompile); please report it with the "
              "traceback above", file=sys.stderr)
        return 1


class _NoteFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = "note" if record.levelno < logging.WARNING else "warning"
        return f"hcompile: {prefix}: {record.getMessage()}"


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("hcompile")
    if any(getattr(h, "_hcompile_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_NoteFormatter())
    handler._hcompile_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
