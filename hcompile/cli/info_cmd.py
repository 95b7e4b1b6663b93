"""``hcompile inspect ARTIFACT`` and ``hcompile ops``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("inspect", help="print an artifact's manifest readably")
    p.add_argument("artifact", type=Path)
    p.set_defaults(handler=inspect)
    p = sub.add_parser("ops", help="list the supported operators with their opset ranges")
    p.set_defaults(handler=ops)


def inspect(args: argparse.Namespace) -> int:
    from hcompile.artifact import Artifact

    print(Artifact.read(args.artifact, check_tvm_version=False).describe(str(args.artifact)))
    return 0


def ops(args: argparse.Namespace) -> int:
    import onnx.defs

    from hcompile.ops import supported_ops
    from hcompile.passes.decompose_rnn import DECOMPOSED

    rows = [(d, op, versions) for d, op, versions in supported_ops()]
    rows += [("", op, [1]) for op in DECOMPOSED]
    print(f"{'domain':<10} {'operator':<28} opsets")
    for domain, op, versions in sorted(rows, key=lambda r: (r[0], r[1])):
        print(f"{domain or 'ai.onnx':<10} {op:<28} {_ranges(versions)}")
    print(f"{'ai.onnx':<10} {'Scan':<28} 9+ (unrolled: the trip count is a static dim)")
    known = {op for _, op, _ in rows} | {"Scan"}
    schemas: Sequence[Any] = onnx.defs.get_all_schemas_with_history()
    expanded = sorted({s.name for s in schemas
                       if s.domain in ("", "ai.onnx") and s.name not in known
                       and (s.has_function or s.has_context_dependent_function)})
    print(f"\n{len(rows) + 1} operators; newest ONNX opset known: "
          f"{onnx.defs.onnx_opset_version()}")
    print(f"\nExpanded into ONNX's own function body (compiled when every op of the body is "
          f"supported), {len(expanded)} more:")
    for start in range(0, len(expanded), 6):
        print("  " + ", ".join(expanded[start:start + 6]))
    return 0


def _ranges(versions: list[int]) -> str:
    """'7+' or '7-12, 13+': each implementation covers its version up to the next one."""
    parts = []
    for index, since in enumerate(versions):
        nxt = versions[index + 1] if index + 1 < len(versions) else None
        parts.append(f"{since}+" if nxt is None else f"{since}-{nxt - 1}")
    return ", ".join(parts)
