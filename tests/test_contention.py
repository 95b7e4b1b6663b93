"""``--shard-batch auto`` under contention: the makespan model, the split search (synthetic
speeds, deterministic), and one real calibration of devices alone and together."""

from __future__ import annotations

import time

import pytest

from hcompile.runtime.contention import (
    SHARD_OVERHEAD_S,
    DeviceSpeed,
    best_split,
    measure_slowdown,
    predict_makespan,
)
from hcompile.runtime.sharding import split_batch
from hcompile.sharding_compile import choose_split, compile_sharded

SAME = {"cpu": DeviceSpeed(100.0), "fpga": DeviceSpeed(100.0)}  # 10 ms per row each


def test_makespan_slows_shards_only_while_they_overlap():
    rows = {"cpu": 6, "fpga": 4}
    assert predict_makespan(rows, SAME) == pytest.approx(0.06 + SHARD_OVERHEAD_S)
    # both at half speed until the FPGA is done at 80 ms (40 ms of work); then the CPU has
    # 20 ms of its 60 left, alone at full speed
    both_halved = predict_makespan(rows, SAME, {"cpu": 2.0, "fpga": 2.0})
    assert both_halved == pytest.approx(0.10 + SHARD_OVERHEAD_S)
    assert predict_makespan({"cpu": 10, "fpga": 0}, SAME, {"cpu": 5.0}) == pytest.approx(0.1)


def test_sharding_that_does_not_pay_picks_one_device_and_says_so():
    # two devices on the same cores: each at half speed while both run, so no split helps
    choice = best_split(10, SAME, {"cpu": 2.0, "fpga": 2.0})
    assert choice.rows == {"cpu": 10, "fpga": 0} and not choice.sharded
    assert choice.predicted_s == pytest.approx(0.1)
    assert choice.best_split_s > choice.predicted_s
    assert "sharding does not pay, so it runs on cpu alone" in choice.describe()
    assert "predicted makespan 100 ms" in choice.describe()
    # the same devices measured alone (no contention model) would be split evenly
    assert best_split(10, SAME).rows == {"cpu": 5, "fpga": 5}


def test_partial_contention_still_splits_and_shifts_rows():
    choice = best_split(10, SAME, {"cpu": 1.5, "fpga": 1.5})
    assert choice.rows == {"cpu": 5, "fpga": 5} and choice.sharded
    assert choice.predicted_s == pytest.approx(0.075 + SHARD_OVERHEAD_S)
    assert "cpu=0.50, fpga=0.50: predicted makespan 75" in choice.describe()
    # the CPU hurt more by sharing than the FPGA: rows move to the FPGA
    lopsided = best_split(20, SAME, {"cpu": 3.0, "fpga": 1.0})
    assert lopsided.rows["fpga"] > lopsided.rows["cpu"] > 0
    assert lopsided.predicted_s < 0.2


def test_large_batch_three_devices_reaches_the_exact_optimum():
    speeds = {"cpu": DeviceSpeed(1000.0), "gpu": DeviceSpeed(3000.0),
              "fpga": DeviceSpeed(2000.0)}
    choice = best_split(3000, speeds)  # a coarse grid first, then moves of single rows
    assert choice.rows == {"cpu": 500, "gpu": 1500, "fpga": 1000}
    assert choice.predicted_s == pytest.approx(0.5 + 2 * SHARD_OVERHEAD_S)


def test_fractions_reproduce_the_rows():
    choice = choose_split(7, {"cpu": 300.0, "fpga": 100.0})
    assert split_batch(7, choice.fractions) == choice.rows


def test_measure_slowdown_runs_every_device_while_the_others_run():
    calls = {"cpu": 0, "fpga": 0}
    active: set[str] = set()
    overlapped = {"cpu": 0, "fpga": 0}  # runs during which the other device was running

    def device(name: str):
        def run() -> None:
            calls[name] += 1
            active.add(name)
            time.sleep(0.001)
            overlapped[name] += len(active) > 1
            active.discard(name)
        return run

    slowdown = measure_slowdown({"cpu": device("cpu"), "fpga": device("fpga")},
                                {"cpu": 0.001, "fpga": 0.001}, repeat=5)
    assert sorted(slowdown) == ["cpu", "fpga"] and min(slowdown.values()) >= 1.0
    assert min(calls.values()) >= 5 and max(overlapped.values()) > 0
    assert measure_slowdown({"cpu": device("cpu")}, {"cpu": 0.001}) == {"cpu": 1.0}


def test_auto_records_speeds_slowdown_and_its_choice(zoo_path, isolated_cache, caplog):
    caplog.set_level("INFO", logger="hcompile")
    art = compile_sharded(zoo_path("mlp"), "auto", input_shapes={"x": (8, 784)})
    sharding = art.manifest["sharding"]
    speeds = {t: DeviceSpeed(*v) for t, v in sharding["auto_speeds"].items()}
    slowdown = sharding["auto_slowdown"]
    assert sorted(slowdown) == ["cpu", "fpga"] and min(slowdown.values()) >= 1.0
    # the artifact's shards are the split the recorded measurements give
    again = choose_split(8, speeds, slowdown)
    assert {s["target"]: s["batch"] for s in sharding["shards"]} == {
        t: r for t, r in again.rows.items() if r > 0}
    assert sharding["auto_predicted_ms"] == pytest.approx(again.predicted_s * 1e3, rel=1e-3)
    note = next(r.getMessage() for r in caplog.records if "--shard-batch auto" in r.getMessage())
    assert "predicted makespan" in note
