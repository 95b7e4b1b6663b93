"""Loop with a compile-time trip count and condition: unrolled, one copy of the body per
iteration (like Scan in convert.py).

The trip count ``M`` and the initial condition must be constants (the ONNX backend freezes the
model inputs they come from), and the body's condition output must fold to a constant in every
iteration: a loop that stops on run-time data is data-dependent control flow and stays
unsupported. Loop-carried values are threaded through; scan outputs are stacked on axis 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

if TYPE_CHECKING:
    from hcompile.frontend.convert import GraphConverter

#: More iterations than this are not unrolled (the graph would grow without bound).
MAX_TRIPS = 1024


def unroll_loop(conv: GraphConverter, node: onnx.NodeProto, name: str, inputs: list[str],
                outputs: list[str], outer: dict[str, str]) -> None:
    body = next(a.g for a in node.attribute if a.name == "body")
    trips = _static_scalar(conv, name, inputs, 0)
    cond = _static_scalar(conv, name, inputs, 1)
    if trips is _DYNAMIC or cond is _DYNAMIC:
        conv.unknown.update(o for o in outputs if o)
        return
    limit = MAX_TRIPS if trips is None else int(trips)
    if limit > MAX_TRIPS or (trips is None and cond is None):
        _give_up(conv, name, outputs, f"Loop node {name} runs {limit} or more iterations "
                 f"(at most {MAX_TRIPS} are unrolled)")
        return
    keep_going = True if cond is None else bool(cond)
    n_carried = len(inputs) - 2
    carried = list(inputs[2:])
    scans: list[list[str]] = [[] for _ in range(len(body.output) - 1 - n_carried)]
    t = 0
    while keep_going and t < limit:
        result = _iteration(conv, body, name, t, keep_going, carried, outer)
        if result is None:
            _give_up(conv, name, outputs, f"Loop node {name} has a condition computed at run "
                     "time (data-dependent control flow is not supported)")
            return
        keep_going, carried, produced = result
        for k, value in enumerate(produced):
            scans[k].append(value)
        t += 1
    if keep_going and trips is None:
        _give_up(conv, name, outputs, f"Loop node {name} has not stopped after {MAX_TRIPS} "
                 "iterations (at most that many are unrolled)")
        return
    if scans and t == 0:
        _give_up(conv, name, outputs, f"Loop node {name} runs no iteration (empty scan outputs "
                 "are not supported)")
        return
    for out, src in zip(outputs[:n_carried], carried, strict=False):
        if out:
            conv._alias(out, src, name)
    for k, out in enumerate(outputs[n_carried:]):
        if out:
            conv._stack(name, k, scans[k], 0, out)


_DYNAMIC = object()


def _static_scalar(conv: GraphConverter, name: str, inputs: list[str], index: int) -> Any:
    """The constant value of optional input ``index``; None when omitted, _DYNAMIC (reported
    as needing a static value) when computed at run time."""
    if index >= len(inputs) or not inputs[index]:
        return None
    value = conv.graph.constants.get(inputs[index])
    if value is not None:
        return np.asarray(value).reshape(-1)[0].item()
    what = "trip count" if index == 0 else "condition"
    conv.problems.dynamic.append(f"not supported: the {what} ('{inputs[index]}') of Loop node "
                                 f"{name} is computed at run time; hcompile unrolls loops and "
                                 "needs it at compile time")
    conv.problems.needed_static.append(inputs[index])
    return _DYNAMIC


def _iteration(conv: GraphConverter, body: onnx.GraphProto, name: str, t: int, cond: bool,
               carried: list[str], outer: dict[str, str]
               ) -> tuple[bool, list[str], list[str]] | None:
    """Visit one copy of the body; (condition out, carried values, scan values), or None when
    the condition out is not a constant."""
    prefix = f"{name}/t{t}"
    rename = dict(outer)
    iter_name, cond_name = body.input[0].name, body.input[1].name
    for inner_name, value in ((iter_name, np.array(t, np.int64)), (cond_name, np.array(cond))):
        rename[inner_name] = f"{prefix}/{inner_name}"
        conv._set_const(rename[inner_name], value)
    rename.update(zip((v.name for v in body.input[2:]), carried, strict=True))
    conv._inline_body(body, prefix, rename)
    names = [rename.get(v.name, v.name) for v in body.output]
    cond_out = conv.graph.constants.get(names[0])
    if cond_out is None:
        return None
    n_carried = len(carried)
    return (bool(np.asarray(cond_out).reshape(-1)[0]), names[1:1 + n_carried],
            names[1 + n_carried:])


def _give_up(conv: GraphConverter, name: str, outputs: list[str], message: str) -> None:
    conv.problems.dynamic.append(message)
    conv.unknown.update(o for o in outputs if o)
