"""``hcompile bench``: statistics, interleaving, and the command as users run it (no timing
asserts: only that the numbers are there and consistent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcompile.errors import UsageError
from hcompile.timing import Timing, random_inputs, time_interleaved
from tests.conftest import hcompile_cli


def test_timing_median_and_p90():
    t = Timing.of([5.0, 1.0, 2.0, 4.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    assert t.median_ms == 6.0 and t.p90_ms == 10.0 and t.runs == 11
    single = Timing.of([2.5])
    assert single.median_ms == single.p90_ms == 2.5


def test_runs_alternate_in_blocks_after_warmup():
    order: list[str] = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = time_interleaved(fns, repeat=5, warmup=2, rounds=2)
    # warm-up of each, then per round and function one untimed run plus the timed block.
    assert order == ["a"] * 2 + ["b"] * 2 + ["a"] * 4 + ["b"] * 4 + ["a"] * 3 + ["b"] * 3
    assert set(times) == {"a", "b"} and all(t.runs == 5 for t in times.values())


def test_bad_counts_are_user_errors():
    with pytest.raises(UsageError):
        time_interleaved({"a": lambda: None}, repeat=0, warmup=1)


def test_random_inputs_follow_the_specs():
    feeds = random_inputs([("x", (2, 3), "float32"), ("i", (4,), "int64"),
                           ("m", (), "bool")], seed=0)
    assert feeds["x"].shape == (2, 3) and feeds["x"].dtype.name == "float32"
    assert feeds["i"].dtype.name == "int64" and feeds["m"].dtype.name == "bool"


def test_bench_model_against_onnxruntime(zoo_path, isolated_cache):
    result = hcompile_cli("bench", str(zoo_path("mlp")), "--vs", "onnxruntime",
                          "--repeat", "3", "--warmup", "1", "--threads", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 thread(s)" in out
    assert "hcompile" in out and "onnxruntime" in out and "ratio hcompile/onnxruntime" in out


def test_bench_artifact(zoo_path, tmp_path: Path, isolated_cache):
    art = tmp_path / "m.hca"
    assert hcompile_cli(str(zoo_path("mlp")), "-o", str(art), "-q").returncode == 0
    result = hcompile_cli("bench", str(art), "--repeat", "2", "--warmup", "0")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime" not in result.stdout
    # Comparing an artifact needs its ONNX model: a user error, not a traceback.
    result = hcompile_cli("bench", str(art), "--vs", "onnxruntime", "--repeat", "1")
    assert result.returncode == 2 and "--onnx" in result.stderr
    result = hcompile_cli("bench", str(art), "--vs", "onnxruntime", "--onnx",
                          str(zoo_path("mlp")), "--repeat", "2", "--warmup", "0")
    assert result.returncode == 0, result.stderr and "ratio" in result.stdout


def test_bench_missing_file(tmp_path: Path):
    result = hcompile_cli("bench", str(tmp_path / "nope.onnx"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_bench_pipeline_reports_throughput(zoo_path, isolated_cache):
    result = hcompile_cli("bench", str(zoo_path("mlp")), "--pipeline", "--repeat", "8",
                          "--warmup", "1")
    assert result.returncode == 0, result.stderr
    assert "sequential" in result.stdout and "run_many" in result.stdout
