"""The records compiles apply, and every decision about which: ``applied.json``.

A search times each candidate alone and back to back. Inside a model, kernels run between
other kernels and a parallel one's fork-join lands on a pool that others just used: the
search's fastest record for resnet18's convs made the model slower (8.1 -> 10.2 ms at batch
1). So a searched record is applied only after :mod:`.validate` timed the whole model with
and without it. This file holds one entry per decided workload: the verdict, the measured
whole-model ratio, and (when kept) the record. It is small (one record per workload, not
every candidate) and read by every compile.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tvm

from hcompile.errors import UsageError
from hcompile.tuning.database import database_dir

log = logging.getLogger("hcompile")

FILE = "applied.json"
VERSION = 1


def applied_path(target: tvm.target.Target, cache_dir: Path | None = None) -> Path:
    return database_dir(target, cache_dir) / FILE


def workload_key(mod: tvm.IRModule) -> str:
    import tvm_ffi

    return str(int(tvm_ffi.structural_hash(mod)))


@dataclass(slots=True)
class Decision:
    """What tuning decided for one workload.

    task: the function's name where it was decided (for people reading the file).
    model: the model whose run decided it.
    kept: True when the searched record is applied; False when the rules' schedule is.
    ratio: whole-model time with the record over without (None: not measured, e.g. when the
        rules' schedule was the search's best, or the predicted gain was too small to
        measure).
    workload, record: MetaSchedule's JSON of the workload and the kept record (None unless
        ``kept``).
    """

    task: str
    model: str
    kept: bool
    ratio: float | None
    workload: str | None = None
    record: str | None = None


class AppliedRecords:
    """``applied.json`` of one target: decisions by workload key."""

    def __init__(self, path: Path, decisions: dict[str, Decision] | None = None) -> None:
        self.path = path
        self.decisions = decisions or {}

    @classmethod
    def load(cls, target: tvm.target.Target, cache_dir: Path | None = None) -> AppliedRecords:
        return cls.read(applied_path(target, cache_dir))

    @classmethod
    def read(cls, path: Path) -> AppliedRecords:
        if not path.is_file():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            decisions = {key: Decision(**entry) for key, entry in data["workloads"].items()}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UsageError(f"the tuning decisions in {path} cannot be read: {err}",
                             hint="delete that file and run `hcompile tune` again") from err
        return cls(path, decisions)

    @classmethod
    def load_for_compile(cls, target: tvm.target.Target,
                         cache_dir: Path | None = None) -> AppliedRecords:
        """Like :meth:`load`, but a damaged file costs speed (the rules), not the compile."""
        try:
            return cls.load(target, cache_dir)
        except UsageError as err:
            log.warning("%s; compiling with the schedule rules only (%s)", err.message, err.hint)
            return cls(applied_path(target, cache_dir))

    def decided(self, key: str) -> bool:
        return key in self.decisions

    def decide(self, key: str, decision: Decision) -> None:
        self.decisions[key] = decision

    def forget(self, key: str) -> None:
        self.decisions.pop(key, None)

    def kept(self) -> dict[str, Decision]:
        return {k: d for k, d in self.decisions.items() if d.kept}

    def save(self) -> None:
        """Write atomically: a compile reading concurrently sees the old or the new file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"version": VERSION,
                "workloads": {k: asdict(d) for k, d in sorted(self.decisions.items())}}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".applied-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def database(self) -> Any:
        """A MetaSchedule database holding the kept records; None when none is kept."""
        kept = self.kept()
        if not kept:
            return None
        from tvm.s_tir import meta_schedule as ms

        database = ms.database.MemoryDatabase(module_equality="structural")
        for decision in kept.values():
            assert decision.workload is not None and decision.record is not None
            workload = ms.database.Workload.from_json(tvm.ir.load_json(decision.workload))
            record = ms.database.TuningRecord.from_json(tvm.ir.load_json(decision.record),
                                                        workload)
            add_record(database, workload.mod, record)
        return database


def add_record(database: Any, mod: tvm.IRModule, record: Any) -> None:
    """Commit ``record`` (from any database) for workload ``mod`` into ``database``."""
    from tvm.s_tir import meta_schedule as ms

    database.commit_tuning_record(ms.database.TuningRecord(
        record.trace, database.commit_workload(mod), record.run_secs, record.target,
        record.args_info))


def record_json(record: Any) -> tuple[str, str]:
    """(workload JSON, record JSON) of a tuning record, as :class:`Decision` stores them."""
    return tvm.ir.save_json(record.workload.as_json()), tvm.ir.save_json(record.as_json())
