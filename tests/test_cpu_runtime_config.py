"""Process-wide settings of the CPU runtime (hcompile/runtime/tvm_cpu.py) and how the cpu
target builds its Relax VM code (targets/llvm_cpu)."""

from __future__ import annotations

import os
import subprocess
import sys

from hcompile.runtime.tvm_cpu import THREAD_POOL_SPIN_COUNT, physical_cores

_PROBE = ("import os; from hcompile.runtime.tvm_cpu import ensure_tvm_runtime; "
          "ensure_tvm_runtime(); print(os.environ.get('TVM_THREAD_POOL_SPIN_COUNT'))")
# The thread count TVM's pool really uses, after the runtime set it up.
_THREADS = ("from hcompile.runtime.tvm_cpu import ensure_tvm_runtime; ensure_tvm_runtime(); "
            "from hcompile.runtime.ffi import tvm_ffi; "
            "print(tvm_ffi().get_global_func('runtime.NumThreads')())")


def _probe(env: dict[str, str], code: str = _PROBE) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def test_the_pool_runs_one_thread_per_physical_core():
    # TVM alone would take half the logical CPUs: 1 on a 2-vCPU machine without SMT.
    assert int(_probe(_without("TVM_NUM_THREADS", "OMP_NUM_THREADS"), _THREADS)) == \
        physical_cores()


def test_thread_count_from_the_environment_wins():
    assert _probe({**os.environ, "TVM_NUM_THREADS": "1"}, _THREADS) == "1"


def test_physical_cores_counts_smt_siblings_once(monkeypatch, tmp_path):
    import hcompile.runtime.tvm_cpu as tvm_cpu

    # Four logical CPUs on two cores (two hardware threads each), all allowed.
    topology = {0: "0", 1: "1", 2: "0", 3: "1"}
    for cpu, core in topology.items():
        folder = tmp_path / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "core_id").write_text(core + "\n")
        (folder / "physical_package_id").write_text("0\n")
    real_path = tvm_cpu.Path
    monkeypatch.setattr(tvm_cpu, "Path", lambda p: real_path(
        str(p).replace("/sys/devices/system/cpu", str(tmp_path))))
    monkeypatch.setattr(tvm_cpu.os, "sched_getaffinity", lambda pid: set(topology))
    assert physical_cores() == 2
    monkeypatch.setattr(tvm_cpu.os, "sched_getaffinity", lambda pid: {0, 1})
    assert physical_cores() == 2
    monkeypatch.setattr(tvm_cpu.os, "sched_getaffinity", lambda pid: {0, 2})
    assert physical_cores() == 1


def test_thread_pool_spins_briefly_by_default():
    env = {k: v for k, v in os.environ.items() if k != "TVM_THREAD_POOL_SPIN_COUNT"}
    assert _probe(env) == THREAD_POOL_SPIN_COUNT == "1000"  # TVM's own: ~300k


def test_spin_count_from_the_environment_wins():
    assert _probe({**os.environ, "TVM_THREAD_POOL_SPIN_COUNT": "1234"}) == "1234"


def test_vm_code_is_compiled_and_part_of_the_cache_key():
    from hcompile.targets.llvm_cpu import EXEC_MODE, LLVMCPUTarget

    assert EXEC_MODE == "compiled"
    flags = LLVMCPUTarget().cache_flags()
    assert flags is not None and flags["exec_mode"] == EXEC_MODE
