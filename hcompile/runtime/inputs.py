"""Checking run-time inputs against the artifact's signature (no silent casting)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from hcompile.artifact.manifest import TensorSpec
from hcompile.errors import InputError
from hcompile.ir.types import is_narrow


def _var(name: str) -> str:
    return name if name.isidentifier() else "value"


@lru_cache(maxsize=64)
def _np_dtype(name: str) -> np.dtype[Any] | None:
    try:
        return np.dtype(name)
    except TypeError:
        return None


def _module(dtype: str) -> str:
    """Where the dtype's scalar type lives: numpy, or ml_dtypes for bfloat16, float8, int4..."""
    return "ml_dtypes" if is_narrow(dtype) else "np"


def _value_problems(spec: TensorSpec, value: Any) -> list[str]:
    name, shape, dtype = spec
    # Fast path (a run's common case): ``dtype.name`` alone costs microseconds.
    if (isinstance(value, np.ndarray) and value.shape == shape
            and value.dtype == _np_dtype(dtype) and value.dtype.isnative):
        return []
    if not isinstance(value, np.ndarray):
        how = (
            f"a 0-d array for a scalar: np.array(value, dtype={_module(dtype)}.{dtype})"
            if shape == ()
            else f"e.g. np.asarray(value, dtype={_module(dtype)}.{dtype})"
        )
        return [
            f"input {name!r} is a {type(value).__name__}, not a numpy array; pass a "
            f"np.ndarray of dtype {dtype} and shape {shape} ({how})"
        ]
    problems = []
    if value.dtype.name != dtype:
        problems.append(
            f"input {name!r} has dtype {value.dtype.name}, expected {dtype}; "
            f"cast with {_var(name)}.astype({_module(dtype)}.{dtype})"
        )
    elif not value.dtype.isnative:
        problems.append(
            f"input {name!r} is {dtype} in non-native byte order; "
            f"convert with {_var(name)}.astype({_module(dtype)}.{dtype})"
        )
    if value.shape != shape:
        dims = ",".join(map(str, value.shape))
        problems.append(
            f"input {name!r} has shape {value.shape}, expected {shape}; "
            f"recompile with --input-shape {name}={dims} to change it"
        )
    return problems


def check_inputs(specs: Sequence[TensorSpec], given: Any) -> dict[str, np.ndarray]:
    """Return ``given`` as name -> ndarray after checking names, types, dtypes and shapes.

    All problems are reported at once, in one :class:`InputError`.
    """
    if not isinstance(given, Mapping):
        signature = ", ".join(map(str, specs)) or "(none)"
        raise InputError(
            f"run() takes a mapping of input name -> np.ndarray, not a {type(given).__name__}",
            hint=f"the model's inputs are {signature}",
        )
    expected = {s.name: s for s in specs}
    problems = []
    unknown = [k for k in given if k not in expected]
    if unknown:
        signature = ", ".join(map(str, specs)) or "(none)"
        problems.append(
            f"unknown input{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; the model's inputs are {signature}"
        )
    for spec in specs:
        if spec.name not in given:
            problems.append(f"missing input {spec.name!r} ({spec.dtype}, shape {spec.shape})")
        else:
            problems += _value_problems(spec, given[spec.name])
    if problems:
        hint = "Executor.inputs lists each input's name, shape and dtype"
        if len(problems) == 1:
            raise InputError(problems[0], hint=hint)
        listed = "\n".join(f"  - {p}" for p in problems)
        raise InputError(f"{len(problems)} problems with the inputs:\n{listed}", hint=hint)
    return {s.name: given[s.name] for s in specs}
