"""The compile cache: an unchanged partition is not compiled twice; anything that changes the
code (IR, flags, toolchain) misses; damage and --no-cache mean a real compile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hcompile
from hcompile import compile_cache
from hcompile.targets import base
from tests.conftest import hcompile_cli


@pytest.fixture
def compile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts TVM compiles made by the targets (``tvm.compile``, and ``relax.build``, which
    the cpu target calls for its compiled-VM code)."""
    calls: list[int] = []

    def counting(real):
        def count(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)
        return count

    monkeypatch.setattr(base.tvm, "compile", counting(base.tvm.compile))
    monkeypatch.setattr(base.tvm.relax, "build", counting(base.tvm.relax.build))
    return calls


def test_second_compile_is_a_cache_hit_with_identical_code(zoo_path, isolated_cache,
                                                           compile_calls):
    model = zoo_path("mlp")
    first = hcompile.compile(model)
    cold = len(compile_calls)
    assert cold >= 1
    second = hcompile.compile(model)
    assert len(compile_calls) == cold  # nothing compiled again
    assert first.members == second.members
    assert any((isolated_cache / "compile").iterdir())
    x = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    np.testing.assert_array_equal(hcompile.load(first).run({"x": x})["y"],
                                  hcompile.load(second).run({"x": x})["y"])


def test_other_shapes_or_flags_miss(zoo_path, isolated_cache, compile_calls, monkeypatch):
    model = zoo_path("mlp")
    hcompile.compile(model)
    count = len(compile_calls)
    hcompile.compile(model, input_shapes={"x": (2, 784)})  # other IR
    assert len(compile_calls) > count
    count = len(compile_calls)
    monkeypatch.setenv("HCOMPILE_CPU_SCHEDULES", "0")  # other flags
    hcompile.compile(model)
    assert len(compile_calls) > count


def test_no_cache_env_bypasses(zoo_path, isolated_cache, compile_calls, monkeypatch):
    model = zoo_path("mlp")
    hcompile.compile(model)
    count = len(compile_calls)
    monkeypatch.setenv("HCOMPILE_NO_CACHE", "1")
    hcompile.compile(model)
    assert len(compile_calls) > count


def test_damaged_entry_is_rebuilt(zoo_path, isolated_cache, compile_calls):
    model = zoo_path("mlp")
    first = hcompile.compile(model)
    for blob in (isolated_cache / "compile").rglob("*.bin"):
        blob.write_bytes(b"not a shared library")
    count = len(compile_calls)
    again = hcompile.compile(model)
    assert len(compile_calls) > count
    assert again.members == first.members


def test_key_covers_versions_target_and_partition(monkeypatch):
    key = compile_cache.compile_key("{}", "llvm", {"a": 1}, 0)
    assert key == compile_cache.compile_key("{}", "llvm", {"a": 1}, 0)
    assert key != compile_cache.compile_key("{}", "llvm", {"a": 2}, 0)
    assert key != compile_cache.compile_key("{}", "llvm", {"a": 1}, 1)
    assert key != compile_cache.compile_key("{}", "cuda", {"a": 1}, 0)
    assert key != compile_cache.compile_key("{ }", "llvm", {"a": 1}, 0)
    import hcompile as pkg

    monkeypatch.setattr(pkg, "__version__", "99.0")
    assert key != compile_cache.compile_key("{}", "llvm", {"a": 1}, 0)


def test_unwritable_cache_only_costs_time(zoo_path, tmp_path: Path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(blocker))
    art = hcompile.compile(zoo_path("mlp"))
    assert art.members


def test_cli_no_cache_flag(zoo_path, tmp_path: Path, isolated_cache):
    result = hcompile_cli(str(zoo_path("mlp")), "-o", str(tmp_path / "m.hca"), "--no-cache")
    assert result.returncode == 0, result.stderr
    assert not (isolated_cache / "compile").exists()
