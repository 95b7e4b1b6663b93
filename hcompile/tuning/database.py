"""Where tuning records live: the search database, and which records compiles apply.

``<cache dir>/tuning/<target key>/`` holds MetaSchedule's JSON database of every candidate a
search measured (``database_workload.json``, ``database_tuning_record.json``): megabytes,
and seconds to parse (5.6 s for 3,600 records here). Compiles do not read it. They apply
:mod:`.applied`'s records only: one per workload, kept because it made a whole model faster
(:mod:`.validate`). Records are keyed by the workload's structural hash, so any model with
the same operator shapes reuses them. The target key is a hash of the target's description
(CPU model, features, cores).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tvm

from hcompile.runtime.cache import default_cache_dir

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"

#: Set by :func:`applying`: ``(database,)`` replaces the applied records in compiles.
_override: contextvars.ContextVar[tuple[Any] | None] = contextvars.ContextVar(
    "hcompile_tuning_override", default=None)


def target_key(target: tvm.target.Target) -> str:
    text = json.dumps(str(target.export()), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def database_dir(target: tvm.target.Target, cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "tuning" / target_key(target)


def has_records(target: tvm.target.Target, cache_dir: Path | None = None) -> bool:
    """Whether the search database has records (not whether compiles apply any)."""
    path = database_dir(target, cache_dir) / RECORDS
    return path.is_file() and path.stat().st_size > 0


def open_search_database(target: tvm.target.Target, cache_dir: Path | None = None) -> Any:
    """The target's MetaSchedule JSON database of searched candidates (created if missing)."""
    from tvm.s_tir import meta_schedule as ms

    folder = database_dir(target, cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(path_workload=str(folder / WORKLOADS),
                                    path_tuning_record=str(folder / RECORDS),
                                    allow_missing=True, module_equality="structural")


def open_database(target: tvm.target.Target, cache_dir: Path | None = None) -> Any:
    """The records a compile applies (a MetaSchedule database), or None for none."""
    override = _override.get()
    if override is not None:
        return override[0]
    from hcompile.tuning.applied import AppliedRecords

    return AppliedRecords.load_for_compile(target, cache_dir).database()


def database_fingerprint(target: tvm.target.Target, cache_dir: Path | None = None) -> str | None:
    """Changes whenever the applied records change (part of the compile-cache key); None
    while :func:`applying` overrides them (such builds stay out of the compile cache)."""
    if _override.get() is not None:
        return None
    from hcompile.tuning.applied import applied_path

    path = applied_path(target, cache_dir)
    if not path.is_file():
        return "none"
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


@contextmanager
def applying(database: Any) -> Iterator[None]:
    """Compiles in this context apply ``database``'s records (None: the schedule rules
    alone) instead of the applied records: how :mod:`.validate` builds its variants."""
    token = _override.set((database,))
    try:
        yield
    finally:
        _override.reset(token)
