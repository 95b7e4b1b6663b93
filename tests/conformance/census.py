"""Run every ONNX node test through hcompile.backend and tabulate outcomes by category.

    .venv/bin/python -m tests.conformance.census [--jobs 2] [--json out.json] [--only SUBSTR]

This is the measuring tool behind the conformance figures (the pytest suite is
tests/conformance/test_onnx_backend.py); it prints pass counts per outcome and per failure.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import warnings

import numpy as np
import onnx
from onnx import numpy_helper


def _run_case(name: str) -> tuple[str, str, str]:
    from onnx.backend.test.loader import load_model_tests

    from hcompile.backend import Backend
    from hcompile.errors import HcompileError
    from tests.conformance.exclusions import excluded_reason

    reason = excluded_reason(name)
    if reason:
        return name, "excluded", reason
    case = _CASES.get(name) or next(c for c in load_model_tests(kind="node") if c.name == name)
    try:
        rep = Backend.prepare(case.model)
        for inputs, outputs in case.data_sets:
            got = rep.run(inputs)
            for want, have in zip(outputs, got, strict=True):
                if isinstance(want, onnx.TensorProto):
                    want = numpy_helper.to_array(want)
                have, want, rtol = _comparable(np.asarray(have), np.asarray(want), case.rtol)
                np.testing.assert_allclose(have, want, rtol=rtol, atol=case.atol, equal_nan=True)
                have_dtype, want_dtype = np.asarray(have).dtype, np.asarray(want).dtype
                if have_dtype != want_dtype:
                    return name, "fail", f"dtype {have_dtype} != {want_dtype}"
    except HcompileError as err:
        return name, "error", f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    except AssertionError as err:
        return name, "fail", str(err).strip().splitlines()[0][:160]
    except Exception as err:
        first = str(err).splitlines()[0][:160] if str(err) else ""
        return name, "crash", f"{type(err).__name__}: {first}"
    return name, "pass", ""


def _comparable(have: np.ndarray, want: np.ndarray, rtol: float
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """As onnx's backend runner compares: bfloat16 as float32 within two bfloat16 ulps."""
    if want.dtype.name == "bfloat16" and have.dtype == want.dtype:
        return have.astype(np.float32), want.astype(np.float32), max(rtol, 2**-6)
    return have, want, rtol


_CASES: dict = {}


def _init() -> None:
    warnings.simplefilter("ignore")
    from onnx.backend.test.loader import load_model_tests

    _CASES.update({c.name: c for c in load_model_tests(kind="node")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    _init()
    names = sorted(n for n in _CASES if args.only in n)
    with multiprocessing.get_context("fork").Pool(args.jobs, initializer=_init) as pool:
        results = pool.map(_run_case, names, chunksize=4)
    counts = collections.Counter(outcome for _, outcome, _ in results)
    applicable = sum(v for k, v in counts.items() if k != "excluded")
    print(dict(counts), f"pass rate {counts['pass'] / max(applicable, 1):.1%} of {applicable}")
    for name, outcome, detail in results:
        if outcome not in ("pass", "excluded"):
            print(f"{outcome:6} {name}: {detail}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
