"""The compile cache: an unchanged partition is not compiled twice; anything that changes the
code (IR, flags, toolchain) misses; damage and --no-cache mean a real compile."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import hcompile
from hcompile import compile_cache
from hcompile.errors import UsageError
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


# -- size bound (least recently used entries go first) ------------------------------------------
def _entry(key: str, cache_dir: Path, kib: int, used: float) -> None:
    """A stored entry of ``kib`` KiB whose last use was at time ``used``."""
    build = compile_cache.CachedBuild(["w"], [{"format": "so", "member": "m", "info": {},
                                               "data": bytes(kib << 10)}])
    compile_cache.store(key, build, cache_dir)
    os.utime(compile_cache.cache_root(cache_dir) / key / "entry.json", (used, used))


def _keys(cache_dir: Path) -> set[str]:
    return {p.name for p in compile_cache.cache_root(cache_dir).iterdir()
            if not p.name.startswith(".")}


def test_prune_drops_least_recently_used(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HCOMPILE_COMPILE_CACHE_MB", "0")  # stores do not prune by themselves
    for age, key in enumerate(["newest", "newer", "old", "older", "oldest"]):
        _entry(key, tmp_path, 100, used=1e9 - age * 100)
    assert compile_cache.load("oldest", tmp_path) is not None  # a hit makes it the newest
    removed = compile_cache.prune(320 << 10, tmp_path)  # 5 x 100 KiB over 320 KiB: to 256
    assert removed == 3
    assert _keys(tmp_path) == {"oldest", "newest"}
    assert compile_cache.prune(320 << 10, tmp_path) == 0  # under the bound: nothing goes


def test_store_prunes_beyond_the_bound(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HCOMPILE_COMPILE_CACHE_MB", "0.5")  # 512 KiB
    monkeypatch.setattr(compile_cache, "PRUNE_INTERVAL_S", 0.0)
    for k in range(8):
        _entry(f"e{k}", tmp_path, 100, used=1e9 + k)
    kept = _keys(tmp_path)
    assert "e7" in kept and "e0" not in kept
    assert sum(len(compile_cache.load(k, tmp_path).blobs[0]["data"]) for k in kept) <= 512 << 10


def test_size_checks_are_spaced(tmp_path: Path, monkeypatch):
    """One walk of the cache per PRUNE_INTERVAL_S: the second store within it does not prune."""
    monkeypatch.setenv("HCOMPILE_COMPILE_CACHE_MB", "0.15")  # 150 KiB
    _entry("first", tmp_path, 100, used=1e9)
    _entry("second", tmp_path, 100, used=1e9 + 1)
    assert _keys(tmp_path) == {"first", "second"}
    (compile_cache.cache_root(tmp_path) / ".pruned").touch()
    os.utime(compile_cache.cache_root(tmp_path) / ".pruned", (0, 0))  # the last check: long ago
    _entry("third", tmp_path, 100, used=1e9 + 2)
    assert _keys(tmp_path) == {"third"}


@pytest.mark.parametrize("value", ["lots", "-5"])
def test_bad_cache_bound_is_a_usage_error(value: str, monkeypatch):
    monkeypatch.setenv("HCOMPILE_COMPILE_CACHE_MB", value)
    with pytest.raises(UsageError, match=f"HCOMPILE_COMPILE_CACHE_MB is '{value}'; expected a "
                                         "size in megabytes"):
        compile_cache.max_bytes()


def test_cache_bound_default_and_off(monkeypatch):
    monkeypatch.delenv("HCOMPILE_COMPILE_CACHE_MB", raising=False)
    assert compile_cache.max_bytes() == compile_cache.DEFAULT_MAX_MB << 20
    monkeypatch.setenv("HCOMPILE_COMPILE_CACHE_MB", "0")
    assert compile_cache.max_bytes() is None
