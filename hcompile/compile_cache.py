"""The compile cache: a partition's compiled code, reused when nothing that made it changed.

Key: sha256 over the partition's Relax module (``tvm.ir.save_json``, which includes inlined
constants), the TVM target, the target's flags (schedules on/off, tuning records), the
partition id, and the hcompile and TVM versions. Entries live in ``<cache dir>/compile/<key>/``
(``entry.json`` plus one file per code blob), written atomically by renaming a finished
temporary folder. ``HCOMPILE_NO_CACHE=1`` (``hcompile compile --no-cache``) bypasses it.

A damaged entry is a miss, never an error: the partition is compiled again and the entry
replaced.

Size: the cache keeps at most ``HCOMPILE_COMPILE_CACHE_MB`` megabytes (default
:data:`DEFAULT_MAX_MB`; 0 = unbounded). A hit marks its entry used (its ``entry.json`` mtime);
when a store finds the cache over the bound, the least recently used entries go until it is
at most :data:`PRUNE_TO` of it. Measuring the cache walks every entry (~0.2 s for 14,000), so
a store does it at most once per :data:`PRUNE_INTERVAL_S` (the ``.pruned`` stamp's mtime,
shared by every process using the cache): between checks the cache may run over the bound by
what those minutes compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hcompile.errors import UsageError
from hcompile.runtime.cache import default_cache_dir

log = logging.getLogger("hcompile")

#: Bumped when the entry layout changes.
FORMAT = 1
#: Default size bound in megabytes (about 45,000 entries of the zoo's partitions).
DEFAULT_MAX_MB = 2048
#: Pruning stops at this fraction of the bound, so the next stores do not prune again.
PRUNE_TO = 0.8
#: Seconds between two size checks of the same cache.
PRUNE_INTERVAL_S = 600.0
_STAMP = ".pruned"


def enabled() -> bool:
    return os.environ.get("HCOMPILE_NO_CACHE", "") not in ("1", "true", "yes")


def cache_root(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "compile"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code generators' sources (``hcompile.targets``): a changed schedule rule
    must not reuse builds made by the old one, even within one hcompile version."""
    import hcompile.targets as targets_pkg

    digest = hashlib.sha256()
    root = Path(targets_pkg.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def compile_key(module_json: str, target: str, flags: Mapping[str, Any],
                partition_id: int) -> str:
    """The cache key of one partition build."""
    import tvm

    from hcompile import __version__

    digest = hashlib.sha256()
    header = {"format": FORMAT, "hcompile": __version__, "code": code_fingerprint(),
              "tvm": tvm.__version__,
              "target": target, "flags": dict(flags), "partition": partition_id}
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    digest.update(b"\0")
    digest.update(module_json.encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class CachedBuild:
    """What a cache entry holds: the params and the code blobs' fields."""

    params: list[str]
    blobs: list[dict[str, Any]]  # format, member, info, data (bytes)


def load(key: str, cache_dir: Path | None = None) -> CachedBuild | None:
    folder = cache_root(cache_dir) / key
    try:
        entry = json.loads((folder / "entry.json").read_text())
        blobs = []
        for index, blob in enumerate(entry["blobs"]):
            data = (folder / f"{index}.bin").read_bytes()
            if hashlib.sha256(data).hexdigest() != blob["sha256"]:
                log.debug("compile cache entry %s is damaged; rebuilding", key)
                return None
            blobs.append({"format": blob["format"], "member": blob["member"],
                          "info": blob["info"], "data": data})
        _touch(folder / "entry.json")
        return CachedBuild(list(entry["params"]), blobs)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves hits
        os.utime(path)


def max_bytes() -> int | None:
    """The size bound from ``HCOMPILE_COMPILE_CACHE_MB`` (None: unbounded)."""
    raw = os.environ.get("HCOMPILE_COMPILE_CACHE_MB", "").strip()
    if not raw:
        return DEFAULT_MAX_MB << 20
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = -1.0
    if megabytes < 0:
        raise UsageError(f"HCOMPILE_COMPILE_CACHE_MB is {raw!r}; expected a size in megabytes",
                         hint=f"e.g. {DEFAULT_MAX_MB} (the default), or 0 for no bound")
    return None if megabytes == 0 else int(megabytes * (1 << 20))


def prune(limit: int, cache_dir: Path | None = None) -> int:
    """Delete least recently used entries while the cache holds more than ``limit`` bytes,
    down to ``PRUNE_TO * limit``. Returns the number of entries deleted."""
    entries = []  # (last use, bytes, folder)
    try:
        with os.scandir(cache_root(cache_dir)) as folders:
            for folder in folders:
                if folder.name.startswith(".") or not folder.is_dir(follow_symlinks=False):
                    continue  # the stamp and stores still being written
                try:
                    used = os.stat(Path(folder.path) / "entry.json").st_mtime
                    size = sum(f.stat().st_size for f in os.scandir(folder.path))
                except OSError:
                    continue  # removed meanwhile, or damaged: a later store replaces it
                entries.append((used, size, folder.path))
    except OSError:
        return 0
    total = sum(size for _, size, _ in entries)
    if total <= limit:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= PRUNE_TO * limit:
            break
        shutil.rmtree(path, ignore_errors=True)
        total -= size
        removed += 1
    log.debug("compile cache: removed %d least recently used entries", removed)
    return removed


def _maybe_prune(root: Path) -> None:
    limit = max_bytes()
    if limit is None:
        return
    stamp = root / _STAMP
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_INTERVAL_S:
            return
    except OSError:
        pass  # no stamp yet: check now
    try:
        stamp.touch()
    except OSError:
        return
    prune(limit, root.parent)


def store(key: str, build: CachedBuild, cache_dir: Path | None = None) -> None:
    """Write an entry; failures (read-only or full disk) only cost the next compile time."""
    root = cache_root(cache_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=root))
        blobs: list[dict[str, Any]] = []
        entry = {"format": FORMAT, "params": build.params, "blobs": blobs}
        for index, blob in enumerate(build.blobs):
            (tmp / f"{index}.bin").write_bytes(blob["data"])
            blobs.append({"format": blob["format"], "member": blob["member"],
                                   "info": blob["info"],
                                   "sha256": hashlib.sha256(blob["data"]).hexdigest()})
        (tmp / "entry.json").write_text(json.dumps(entry))
        final = root / key
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:  # another process stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as err:
        log.debug("compile cache: cannot store %s: %s", key, err)
        return
    _maybe_prune(root)
