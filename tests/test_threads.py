"""``Executor.run`` from many threads at once gives exactly the serial results."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import hcompile
from tests.runtime_models import BRANCH_PLACE, branch_model, compile_placed

THREADS = 8
RUNS = 200


def hammer(exe, inputs: list[np.ndarray], expected: list[np.ndarray]) -> list[str]:
    """``THREADS`` threads, each running ``RUNS`` times over ``inputs``; mismatches found."""
    problems: list[str] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        start.wait()
        try:
            for r in range(RUNS):
                k = (t + r) % len(inputs)
                out = exe.run({"x": inputs[k]})["y"]
                if not np.array_equal(out, expected[k]):
                    problems.append(f"thread {t} run {r}: input {k} differs")
        except Exception as err:  # reported below, with the thread
            problems.append(f"thread {t}: {err!r}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


@pytest.mark.parametrize("placement", ["cpu+fpga branches", "cpu only"])
def test_8_threads_x_200_runs_equal_serial(placement, isolated_cache):
    model = branch_model(n=32, depth=2, batch=2)
    if placement == "cpu only":
        art = compile_placed(model, (), targets=["cpu"])
    else:
        art = compile_placed(model, BRANCH_PLACE)
    exe = hcompile.load(art)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 32)).astype(np.float32) for _ in range(5)]
    expected = [exe.run({"x": x})["y"] for x in inputs]  # serial
    assert not hammer(exe, inputs, expected)
    assert [exe.run({"x": x})["y"].tolist() for x in inputs] == [e.tolist() for e in expected]
    exe.close()
