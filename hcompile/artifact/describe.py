"""``Artifact.describe``: the text ``hcompile inspect`` prints."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hcompile.artifact.manifest import CodeSpec, ParsedManifest, WeightSpec

if TYPE_CHECKING:
    from hcompile.artifact.artifact import Artifact


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _weight_bytes(w: WeightSpec) -> int:
    return math.prod(w.shape) * np.dtype(w.dtype).itemsize


def _code_line(code: CodeSpec, members: Mapping[str, bytes]) -> str:
    size = human_bytes(len(members.get(code.member, b"")))
    return f"{code.format} {code.member} ({size}), entry {code.entry}"


def _ms(value: Any) -> str:
    return f"{value:g} ms" if isinstance(value, int | float) else "?"


def _plan_lines(plan: Any) -> list[str]:
    if not isinstance(plan, dict) or not plan:
        return ["plan        (none recorded)"]
    head = f"plan        partitioner {plan.get('partitioner', '?')}"
    if "predicted_ms" in plan:
        head += f", predicted {_ms(plan['predicted_ms'])}"
    if "solve_ms" in plan:
        head += f" (solved in {_ms(plan['solve_ms'])})"
    lines = [head]
    single = plan.get("single_device_ms")
    if isinstance(single, dict) and single:
        per_device = ", ".join(f"{k} {_ms(v)}" for k, v in single.items())
        lines.append(f"            single device: {per_device}")
    counts = []
    for key in ("partitions", "transfers", "nodes"):
        if isinstance(plan.get(key), list):
            counts.append(f"{len(plan[key])} {key}")
    if counts:
        lines.append("            " + ", ".join(counts))
    return lines


def describe_parsed(
    manifest: Mapping[str, Any],
    members: Mapping[str, bytes],
    parsed: ParsedManifest,
    source: str | None = None,
) -> str:
    m = manifest
    title = f"hcompile artifact{' ' + source if source else ''}"
    lines = [
        title,
        f"format      {m.get('format', '?')} v{m.get('format_version', '?')}, "
        f"hcompile {m.get('hcompile_version', '?')}, TVM {m.get('tvm_version', '?')}, "
        f"created {m.get('created', '?')}",
    ]
    model = m.get("model")
    if not isinstance(model, dict):
        model = {}
    sha = str(model.get("sha256", "?"))
    lines.append(
        f"model       {model.get('name', '?')} (source {model.get('source', '?')}, "
        f"sha256 {sha[:16]}{'…' if len(sha) > 16 else ''})"
    )
    lines.append("inputs      " + (", ".join(map(str, parsed.inputs)) or "(none)"))
    lines.append("outputs     " + (", ".join(map(str, parsed.outputs)) or "(none)"))
    total = sum(_weight_bytes(w) for w in parsed.weights.values())
    lines.append(f"weights     {len(parsed.weights)} tensors, {human_bytes(total)}")
    lines.append(f"partitions  {len(parsed.partitions)}")
    for p in parsed.partitions:
        param_bytes = sum(_weight_bytes(parsed.weights[n]) for n in p.params)
        lines.append(
            f"  #{p.id} target {p.target} on {p.device}: inputs {list(p.inputs)}, "
            f"outputs {list(p.outputs)}, {len(p.params)} params ({human_bytes(param_bytes)})"
        )
        lines += [f"      code     {_code_line(c, members)}" for c in p.code]
        fallback = _code_line(p.fallback, members) if p.fallback else "none"
        lines.append(f"      fallback {fallback}")
    lines += _plan_lines(m.get("plan"))
    size = sum(len(d) for d in members.values())
    lines.append(f"members     {len(members)}, {human_bytes(size)} unpacked")
    return "\n".join(lines)


def describe(art: Artifact, source: str | None = None) -> str:
    return describe_parsed(art.manifest, art.members, art.parsed(), source)
