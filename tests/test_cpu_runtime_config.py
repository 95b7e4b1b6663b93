"""Process-wide settings of the CPU runtime (hcompile/runtime/tvm_cpu.py) and how the cpu
target builds its Relax VM code (targets/llvm_cpu)."""

from __future__ import annotations

import os
import subprocess
import sys

from hcompile.runtime.tvm_cpu import THREAD_POOL_SPIN_COUNT

_PROBE = ("import os; from hcompile.runtime.tvm_cpu import ensure_tvm_runtime; "
          "ensure_tvm_runtime(); print(os.environ.get('TVM_THREAD_POOL_SPIN_COUNT'))")


def _probe(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_thread_pool_does_not_spin_by_default():
    env = {k: v for k, v in os.environ.items() if k != "TVM_THREAD_POOL_SPIN_COUNT"}
    assert _probe(env) == THREAD_POOL_SPIN_COUNT == "0"


def test_spin_count_from_the_environment_wins():
    assert _probe({**os.environ, "TVM_THREAD_POOL_SPIN_COUNT": "1234"}) == "1234"


def test_vm_code_is_compiled_and_part_of_the_cache_key():
    from hcompile.targets.llvm_cpu import EXEC_MODE, LLVMCPUTarget

    assert EXEC_MODE == "compiled"
    flags = LLVMCPUTarget().cache_flags()
    assert flags is not None and flags["exec_mode"] == EXEC_MODE
