"""Keep a searched record only where the whole model runs faster with it.

The search's timings are of one function alone, run back to back. In a model the same
function runs between others, with caches and the thread pool in another state, and a
record that wins alone can lose there (resnet18's searched convs: 8.1 -> 10.2 ms at batch
1). So after a search the model is compiled with the rules alone and with the searched
records, and both are timed interleaved in one process (:func:`hcompile.timing.time_interleaved`).

Records are tried in groups, biggest predicted gain first: all at once, then, where a group
does not make the model faster by ``MARGIN``, its halves, down to single records. A group
that does is kept whole (a member costing a little may ride along with one saving more; the
model is faster either way, and splitting further would cost compiles). A group
whose predicted gain (the search's own rules-vs-best times, times its uses) is below
``RESOLVABLE`` of the model's time is not split further: the measurement could not tell
such a gain from noise, and an unproven record is not applied. At most ``2n - 1`` compiles
for ``n`` candidates, usually far fewer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hcompile.tuning.applied import AppliedRecords, Decision, add_record, record_json
from hcompile.tuning.baseline import rule_schedules, searched, trace_key

log = logging.getLogger("hcompile")

#: A group is kept when the model's median time with it is at least this much lower.
MARGIN = 0.01
#: Groups predicted to save less than this fraction of the model's time are not measured.
RESOLVABLE = 0.01
#: Timed runs per variant and comparison: about this long, and at least ``MIN_RUNS``.
SECONDS_PER_VARIANT = 1.0
MIN_RUNS = 10


@dataclass(slots=True)
class Candidate:
    """A workload whose searched best is not the rules' schedule.

    gain_s: predicted time saved per model run (search's rules time minus best time, times
        the function's uses); None when the rules' time is not in the search database.
    """

    name: str
    key: str
    mod: Any  # the workload's IRModule
    record: Any  # the search's best TuningRecord
    gain_s: float | None


@dataclass(slots=True)
class ValidationReport:
    """Names of the functions whose records were kept, dropped, or never beat the rules;
    how many model compiles and seconds validating took; the model's time with the kept
    records over the rules alone."""

    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rules_best: list[str] = field(default_factory=list)
    compiles: int = 0
    seconds: float = 0.0
    ratio: float | None = None  # the model with the kept records over the rules alone


def find_candidates(tasks: Sequence[Any], search_db: Any,
                    target: Any) -> tuple[list[Candidate], list[Any]]:
    """Split the searched ones of ``tasks`` into candidates and those whose best is the
    rules'."""
    from hcompile.tuning.applied import workload_key

    candidates, rules_best = [], []
    for task, rules in zip(tasks, rule_schedules(tasks, target), strict=True):
        mod = task.extracted.dispatched[0]
        if not searched(search_db, mod, rules):  # e.g. only its rules timed: decide later
            continue
        records = search_db.get_top_k(search_db.commit_workload(mod), 1 << 16)
        rules_index = _index_of_trace(records, rules.trace) if rules is not None else None
        if rules_index == 0:
            rules_best.append(task)
            continue
        gain = None
        if rules_index is not None:
            gain = (_mean(records[rules_index]) - _mean(records[0])) * task.weight
        candidates.append(Candidate(task.name, workload_key(mod), mod, records[0], gain))
    candidates.sort(key=lambda c: float("inf") if c.gain_s is None else c.gain_s, reverse=True)
    return candidates, rules_best


def validate(model: Any, input_shapes: Mapping[str, Sequence[int]] | None,
             candidates: Sequence[Candidate], applied: AppliedRecords,
             model_name: str) -> ValidationReport:
    """Decide every candidate by timing the whole model; decisions go into ``applied``."""
    start = time.perf_counter()
    report = ValidationReport()
    if candidates:
        trials = ModelTrials(_Builder(model, input_shapes, applied, report))
        decided = split_search(candidates, trials)
        report.ratio = trials.overall()
        # Kept groups were each faster than the state before them; if all of them together
        # are not faster than the rules, some of those wins were noise: keep none.
        confirmed = report.ratio is None or report.ratio < 1.0
        for cand, kept, ratio in decided:
            kept = kept and confirmed
            workload, record = record_json(cand.record) if kept else (None, None)
            applied.decide(cand.key, Decision(cand.name, model_name, kept,
                                              None if ratio is None else round(ratio, 4),
                                              workload, record))
            (report.kept if kept else report.dropped).append(cand.name)
    report.seconds = time.perf_counter() - start
    return report


class Trials(Protocol):
    """What :func:`split_search` measures with (the model, or a test's stand-in)."""

    model_s: float  # one run of the model as it stands

    def ratio(self, group: Sequence[Candidate]) -> float:
        """The model's time with the kept records plus ``group`` over its time with the
        kept records alone."""

    def keep(self, group: Sequence[Candidate]) -> None:
        """Make ``group`` part of the kept records (the last group :meth:`ratio` tried)."""


def split_search(candidates: Sequence[Candidate],
                 trials: Trials) -> list[tuple[Candidate, bool, float | None]]:
    """(candidate, kept, measured ratio) for each: groups, then halves of groups that do
    not pay, down to single candidates; unresolvable groups are not measured."""
    decided: list[tuple[Candidate, bool, float | None]] = []
    queue: list[list[Candidate]] = [list(candidates)]
    while queue:
        group = queue.pop(0)
        if not _resolvable(group, trials.model_s):
            decided += [(cand, False, None) for cand in group]
            continue
        ratio = trials.ratio(group)
        log.info("tune: %d record(s): %.3fx", len(group), ratio)
        if ratio <= 1 - MARGIN:
            trials.keep(group)
            decided += [(cand, True, ratio) for cand in group]
        elif len(group) > 1:
            half = len(group) // 2
            queue[:0] = [group[:half], group[half:]]
        else:
            decided.append((group[0], False, ratio))
    return decided


class ModelTrials:
    """:class:`Trials` on the real model: each group compiled in, timed against the last
    kept state."""

    def __init__(self, build: _Builder) -> None:
        self.build = build
        self.kept: list[Candidate] = []
        self.first = self.base = build([])
        self.model_s = self.base.seconds
        self.last: _Variant | None = None

    def ratio(self, group: Sequence[Candidate]) -> float:
        self.last = self.build([*self.kept, *group])
        return compare(self.base.run, self.last.run, max(self.base.seconds, self.last.seconds))

    def keep(self, group: Sequence[Candidate]) -> None:
        assert self.last is not None
        self.kept += group
        self.base, self.model_s = self.last, self.last.seconds

    def overall(self) -> float | None:
        """The model with every kept record over the rules alone (None: none kept)."""
        if not self.kept:
            return None
        return compare(self.first.run, self.base.run, max(self.first.seconds, self.base.seconds))


def compare(base: Callable[[], Any], trial: Callable[[], Any], run_s: float) -> float:
    """Median time of ``trial`` over ``base``, timed interleaved."""
    from hcompile.timing import time_interleaved

    repeat = max(MIN_RUNS, int(SECONDS_PER_VARIANT / max(run_s, 1e-6)))
    times = time_interleaved({"base": base, "trial": trial}, repeat=repeat, warmup=2)
    return times["trial"].median_ms / times["base"].median_ms


@dataclass(slots=True)
class _Variant:
    run: Callable[[], Any]
    seconds: float  # one run, roughly


class _Builder:
    """Compiles the model with the already-kept records plus a group, ready to time."""

    def __init__(self, model: Any, input_shapes: Mapping[str, Sequence[int]] | None,
                 applied: AppliedRecords, report: ValidationReport) -> None:
        self.model, self.input_shapes = model, input_shapes
        self.applied, self.report = applied, report

    def __call__(self, records: Sequence[Candidate]) -> _Variant:
        import hcompile
        from hcompile.timing import random_inputs
        from hcompile.tuning.database import applying

        database = self._database(records)
        with applying(database):
            artifact = hcompile.compile(self.model, input_shapes=self.input_shapes,
                                        targets=["cpu"])
        self.report.compiles += 1
        exe = hcompile.load(artifact)
        feeds = random_inputs(exe.inputs, 0)
        exe.run(feeds)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            exe.run(feeds)
            times.append(time.perf_counter() - start)
        return _Variant(lambda: exe.run(feeds), sorted(times)[2])

    def _database(self, records: Sequence[Candidate]) -> Any:
        from tvm.s_tir import meta_schedule as ms

        database = ms.database.MemoryDatabase(module_equality="structural")
        kept = self.applied.database()
        if kept is not None:
            for record in kept.get_all_tuning_records():
                add_record(database, record.workload.mod, record)
        for cand in records:
            add_record(database, cand.mod, cand.record)
        return database


def _resolvable(group: Sequence[Candidate], model_s: float) -> bool:
    if any(c.gain_s is None for c in group):
        return True
    return sum(c.gain_s for c in group if c.gain_s is not None) >= RESOLVABLE * model_s


def _index_of_trace(records: Sequence[Any], trace: Any) -> int | None:
    wanted = trace_key(trace)
    return next((i for i, r in enumerate(records) if trace_key(r.trace) == wanted), None)


def _mean(record: Any) -> float:
    secs = [float(s) for s in record.run_secs]
    return sum(secs) / len(secs)
