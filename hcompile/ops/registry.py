"""The operator registry: one lowering per (op, domain, first opset), filled by ``@register``.

Each op module under ``hcompile/ops/`` decorates its lowering functions;
``hcompile/ops/__init__.py`` imports those modules explicitly. For a node written against
opset N the implementation with the largest ``since`` <= N wins (the ONNX reference
evaluator's rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

#: A lowering turns one IR node into one Relax expression per node output.
LowerFn = Callable[["LowerContext", "Node"], Sequence[Any]]


@dataclass(frozen=True, slots=True)
class OpImpl:
    """How hcompile compiles one operator version.

    op / domain: ONNX operator type and domain (``""`` = ai.onnx).
    since: first opset version this implementation follows.
    lower: the lowering to Relax.
    static_inputs: indices of inputs that must be compile-time constants (shapes, axes, pads...);
        the importer folds them, and a node whose static input stays dynamic is rejected.
    """

    op: str
    domain: str
    since: int
    lower: LowerFn
    static_inputs: tuple[int, ...] = ()


_REGISTRY: dict[tuple[str, str], list[OpImpl]] = {}


def register(
    ops: str | Iterable[str],
    *,
    since: int = 1,
    domain: str = "",
    static_inputs: Iterable[int] = (),
) -> Callable[[LowerFn], LowerFn]:
    """Register ``fn`` as the lowering of ``ops`` from opset ``since`` on."""
    names = [ops] if isinstance(ops, str) else list(ops)

    def decorate(fn: LowerFn) -> LowerFn:
        for name in names:
            impls = _REGISTRY.setdefault((domain, name), [])
            if any(impl.since == since for impl in impls):
                raise ValueError(f"{domain or 'ai.onnx'}::{name} since {since} registered twice")
            impls.append(OpImpl(name, domain, since, fn, tuple(static_inputs)))
            impls.sort(key=lambda impl: impl.since)
        return fn

    return decorate


def lookup(op: str, domain: str, opset: int) -> OpImpl | None:
    """The implementation for ``op`` at ``opset``, or None when hcompile cannot compile it."""
    found = None
    for impl in _REGISTRY.get((_normalize(domain), op), []):
        if impl.since <= opset:
            found = impl
    return found


def supported_ops() -> list[tuple[str, str, list[int]]]:
    """(domain, op, sorted 'since' versions) for every registered op, sorted by domain and op."""
    return sorted((d, op, [i.since for i in impls]) for (d, op), impls in _REGISTRY.items())


def _normalize(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain
