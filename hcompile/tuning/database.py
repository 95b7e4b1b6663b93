"""The persistent tuning database: MetaSchedule's JSON database, one folder per target.

``<cache dir>/tuning/<target key>/`` holds ``database_workload.json`` and
``database_tuning_record.json``; records are keyed by the workload's structural hash inside,
so any model with the same operator shapes reuses them. The target key is a hash of the
target's description (CPU model, features, cores).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import tvm

from hcompile.runtime.cache import default_cache_dir

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def target_key(target: tvm.target.Target) -> str:
    text = json.dumps(str(target.export()), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def database_dir(target: tvm.target.Target, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "tuning" / target_key(target)


def has_records(target: tvm.target.Target, cache_dir: Path | None = None) -> bool:
    path = database_dir(target, cache_dir) / RECORDS
    return path.is_file() and path.stat().st_size > 0


def open_database(target: tvm.target.Target, cache_dir: Path | None = None,
                  *, create: bool = False) -> Any:
    """The target's MetaSchedule JSON database; None when it has no records (and not
    ``create``)."""
    if not create and not has_records(target, cache_dir):
        return None
    from tvm.s_tir import meta_schedule as ms

    folder = database_dir(target, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(path_workload=str(folder / WORKLOADS),
                                    path_tuning_record=str(folder / RECORDS),
                                    allow_missing=True, module_equality="structural")


def database_fingerprint(target: tvm.target.Target, cache_dir: Path | None = None) -> str:
    """Changes whenever the target's records change (part of the compile-cache key)."""
    path = database_dir(target, cache_dir) / RECORDS
    if not path.is_file():
        return "none"
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"
