"""``hcompile tune``: MetaSchedule search over a model's CPU functions.

The model goes through the same import, passes and partitioning as ``hcompile compile``; each
CPU partition is lowered and legalized exactly as the CPU target does before scheduling, so
the tuned functions are the ones a later compile looks up (``MetaScheduleApplyDatabase`` in
:func:`hcompile.targets.llvm_cpu.schedules.cpu_pipeline`). Tasks already in the database are
skipped; the rest are tuned one at a time, biggest first, so a time budget is spent where it
matters and progress (with an ETA) can be shown after each.

Before the search, each task's rule schedule is timed like a candidate and stored as a
record (:mod:`.baseline`), so the search database's best record for a workload is the rules'
schedule unless the search found a faster one. Where the rules chose one thread, the search
does too (:mod:`.space`).
A searched record that beats the rules alone is then applied only if the whole model runs
faster with it (:mod:`.validate`); the decisions go to :mod:`.applied`, which compiles read.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcompile.errors import UsageError
from hcompile.tuning.applied import Decision
from hcompile.tuning.baseline import record_rule_schedules, rule_schedules, searched
from hcompile.tuning.space import has_parallel_loop, serial_space
from hcompile.tuning.validate import ValidationReport

log = logging.getLogger("hcompile")

#: MetaSchedule's defaults (30 s) fail every candidate on a loaded small machine: a build
#: worker imports TVM and runs LLVM in a fresh process.
BUILD_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120

#: Rule schedules built and timed per builder call (each call starts a process pool).
RULE_BATCH = 8

#: ``progress(done, total, task name, elapsed s, eta s)`` after every task.
Progress = Callable[[int, int, str, float, float], None]


@dataclass(slots=True)
class TuneTask:
    name: str
    flops: float
    weight: int
    extracted: Any  # ms.ExtractedTask


@dataclass(slots=True)
class TuneReport:
    """What one ``hcompile tune`` did. database: the search database's folder; tuned: tasks
    searched now; skipped_known: searched before; skipped_budget: left for lack of time;
    serial: searched single-threaded; validation: which records the model kept."""

    database: Path
    tuned: list[str] = field(default_factory=list)
    skipped_known: list[str] = field(default_factory=list)
    skipped_budget: list[str] = field(default_factory=list)
    serial: list[str] = field(default_factory=list)  # searched without parallel loops
    validation: ValidationReport = field(default_factory=ValidationReport)
    seconds: float = 0.0


def extract_tasks(model: Any, input_shapes: Mapping[str, Sequence[int]] | None,
                  target: Any) -> list[TuneTask]:
    """The distinct TIR functions of the model's CPU code, biggest (flops × uses) first."""
    import tvm
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms

    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, run_pipeline
    from hcompile.plan import build_partitions, subgraph
    from hcompile.targets.llvm_cpu import LLVMCPUTarget
    from hcompile.targets.llvm_cpu.schedules import CPUFeatures, pre_schedule_passes
    from hcompile.targets.lowering import lower_graph, partition_params

    cpu = LLVMCPUTarget()
    passes = pre_schedule_passes(target, CPUFeatures.of(target), layouts=cpu.schedules,
                                 blocked_convs=cpu.blocked_convs)
    graph, _ = import_model(model, input_shapes)
    run_pipeline(graph, PassOptions(targets=["cpu"]))
    tasks: dict[int, TuneTask] = {}
    for part in build_partitions(graph) if graph.nodes else []:
        sub = subgraph(graph, part)
        module = lower_graph(sub, partition_params(sub))
        with target:
            module = _per_inference(tvm.transform.Sequential(passes)(module))
        for task in ms.relax_integration.extract_tasks(module, target):
            func = task.dispatched[0]
            if _hand_scheduled(func):  # e.g. the LSTM recurrence: no search space to tune
                continue
            key = int(tvm_ffi.structural_hash(func))
            if key in tasks:
                tasks[key].weight += int(task.weight)
                continue
            try:
                flops = float(tvm.s_tir.analysis.estimate_tir_flops(func))
            except Exception:  # functions the estimator cannot read count as small
                flops = 0.0
            tasks[key] = TuneTask(task.task_name, flops, int(task.weight), task)
    return sorted(tasks.values(), key=lambda t: t.flops * t.weight, reverse=True)


def tune_model(model: Any, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
               trials: int = 64, minutes: float | None = None,
               progress: Progress | None = None, cache_dir: Path | None = None,
               retune: bool = False) -> TuneReport:
    """Tune every CPU function of ``model`` with ``trials`` measured candidates each (new
    searches start only within ``minutes`` if given), then keep the records that make the
    whole model faster (:mod:`.validate`) for later compiles."""
    from hcompile.targets.llvm_cpu import LLVMCPUTarget
    from hcompile.tuning.applied import AppliedRecords, workload_key
    from hcompile.tuning.database import database_dir, open_search_database
    from hcompile.tuning.validate import find_candidates, validate

    if trials < 1:
        raise UsageError("--trials must be at least 1")
    if minutes is not None and minutes <= 0:
        raise UsageError("--minutes must be positive")
    start = time.perf_counter()
    target = LLVMCPUTarget().tvm_target()
    applied = AppliedRecords.load(target, cache_dir)  # a damaged file stops before the search
    database = open_search_database(target, cache_dir)
    report = TuneReport(database_dir(target, cache_dir))
    tasks = extract_tasks(model, input_shapes, target)
    todo = []
    for task, rules in zip(tasks, rule_schedules(tasks, target), strict=True):
        if not retune and searched(database, task.extracted.dispatched[0], rules):
            report.skipped_known.append(task.name)
        else:
            todo.append((task, rules))
    deadline = start + minutes * 60 if minutes is not None else None
    for task in _search(todo, target, database, trials, deadline, report, progress, start):
        applied.forget(workload_key(task.extracted.dispatched[0]))  # searched: decide again
    undecided = [t for t in tasks if not applied.decided(workload_key(t.extracted.dispatched[0]))]
    candidates, rules_best = find_candidates(undecided, database, target)
    model_name = Path(model).stem if isinstance(model, str | Path) else "<memory>"
    for task in rules_best:
        applied.decide(workload_key(task.extracted.dispatched[0]),
                       Decision(task.name, model_name, kept=False, ratio=None))
    report.validation = validate(model, input_shapes, candidates, applied, model_name)
    report.validation.rules_best = [t.name for t in rules_best]
    applied.save()
    report.seconds = time.perf_counter() - start
    return report


def _search(todo: Sequence[tuple[TuneTask, Any]], target: Any, database: Any, trials: int,
            deadline: float | None, report: TuneReport, progress: Progress | None,
            start: float) -> list[TuneTask]:
    """Run MetaSchedule on each (task, rule schedule) in turn until ``deadline``; returns
    the tasks searched. One builder and runner serve all (each new one starts processes)."""
    from tvm.s_tir import meta_schedule as ms

    builder = ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S)
    runner = ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S)
    done: list[TuneTask] = []
    with tempfile.TemporaryDirectory(prefix="hcompile-tune-") as work_dir:
        for index, (task, rules) in enumerate(todo):
            if deadline is not None and time.perf_counter() >= deadline:
                report.skipped_budget.extend(t.name for t, _ in todo[index:])
                break
            if index % RULE_BATCH == 0:
                batch = todo[index:index + RULE_BATCH]
                record_rule_schedules([t for t, _ in batch], [r for _, r in batch], target,
                                      database, builder, runner)
            serial = rules is not None and not has_parallel_loop(rules.mod)
            if serial:
                report.serial.append(task.name)
            _drop_unnamed_handlers()
            with _quiet_search_logs():
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    [task.extracted], work_dir=work_dir, num_threads="physical",
                    space=serial_space() if serial else "post-order-apply")
                ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work_dir,
                                   max_trials_global=trials, max_trials_per_task=trials,
                                   num_trials_per_iter=min(64, trials), database=database,
                                   builder=builder, runner=runner)
            report.tuned.append(task.name)
            done.append(task)
            if progress is not None:
                elapsed = time.perf_counter() - start
                eta = elapsed / len(done) * (len(todo) - len(done))
                if deadline is not None:
                    eta = min(eta, max(0.0, deadline - time.perf_counter()))
                progress(len(done), len(todo), task.name, elapsed, eta)
    return done


def _per_inference(module: Any) -> Any:
    """``module`` without what runs once at load (``main_transform_params``: weight padding
    and packing) and the functions only it calls: not worth search time."""
    import tvm
    from tvm import relax

    kept = {gv: f for gv, f in module.functions_items()
            if not gv.name_hint.endswith("_transform_params")}
    if len(kept) == len(module.functions):
        return module
    return relax.transform.DeadCodeElimination(["main"])(tvm.IRModule(kept, attrs=module.attrs))


def _hand_scheduled(mod: Any) -> bool:
    attrs = mod["main"].attrs
    return attrs is not None and bool(attrs.get("tirx.is_scheduled", False))


@contextmanager
def _quiet_search_logs() -> Iterator[None]:
    """MetaSchedule prints every task's table and its cost model's fitting to stdout: making
    a task's context makes a console handler at its logger's level (NOTSET counts as DEBUG)
    and then sets that logger to DEBUG, so the level is set again around every task. Unless the
    host set a level or HCOMPILE_DEBUG=1, only errors reach the console (the progress bar
    is ours); the full logs still go to the search's work-dir files."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    if logger.level != logging.NOTSET or os.environ.get("HCOMPILE_DEBUG") == "1":
        yield
        return
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(logging.NOTSET)


def _drop_unnamed_handlers() -> None:
    """MetaSchedule re-configures its loggers for every search with ``dictConfig``, naming
    its logger's current handlers; an unnamed one (a capture handler a host application or
    a test runner attached) makes that fail with a bare AttributeError."""
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    for handler in list(logger.handlers):
        if handler.get_name() is None:
            logger.removeHandler(handler)
