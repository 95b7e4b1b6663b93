"""The executor: loads an artifact's partitions and runs them as their inputs become ready.

Partitions run on one worker per device, each as soon as the partitions it depends on are
done (:mod:`hcompile.runtime.scheduler`); when no two partitions on different devices can
overlap, ``run`` calls them in the caller's thread instead (no hand-off). ``run_many``
keeps several requests in flight so the devices work on different requests at once
(pipelining). A sharded artifact (:mod:`hcompile.runtime.sharding`) splits its inputs
along the batch axis, runs the shards in parallel and concatenates the outputs.

Device partitions fall back to their CPU code when their device is missing at load or fails
at run; each fallback is logged once (``strict=True`` makes it a :class:`DeviceError`).
Fault injection for tests: ``HCOMPILE_FAULT_INJECT=fpga,gpu`` (or ``load(...,
fault_inject={"fpga"})``) makes every run on those device kinds fail as a broken device would.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hcompile.artifact import Artifact, ParsedManifest, TensorSpec, decode_weight
from hcompile.artifact.archive import DEFAULT_MAX_TOTAL_SIZE
from hcompile.artifact.manifest import PartitionSpec
from hcompile.errors import ArtifactError, DeviceError, HcompileError
from hcompile.ir.types import from_storage, storage_dtype
from hcompile.runtime import residency
from hcompile.runtime.cache import default_cache_dir
from hcompile.runtime.direct import DirectPath
from hcompile.runtime.inputs import check_inputs
from hcompile.runtime.runners import (
    RUNNERS,
    PartitionRunner,
    RunnerOptions,
    choose_code,
    unavailable_reasons,
)
from hcompile.runtime.scheduler import Scheduler, StepGraph
from hcompile.runtime.sharding import Sharding
from hcompile.runtime.tensors import host_ready, to_ffi, to_numpy
from hcompile.runtime.trace import Trace

log = logging.getLogger("hcompile")


@dataclass(frozen=True)
class PartitionInfo:
    """How a partition was loaded: which code, on which device, fallback or not."""

    id: int
    target: str
    device: str
    runs_on: str
    code_format: str
    member: str
    fallback: bool
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class _Step:
    """One partition at run time: its runner, and what is needed to swap in the fallback."""

    spec: PartitionSpec
    runner: PartitionRunner
    params: list[Any]
    blob_of: Any  # member name -> bytes, for loading the fallback later
    on_fallback: bool
    lock: threading.Lock = field(default_factory=threading.Lock)


class Executor:
    """A loaded artifact. ``run`` is thread-safe; outputs are fresh numpy arrays.

    ``inputs`` / ``outputs`` list :class:`TensorSpec` ``(name, shape, dtype)`` tuples in the
    model's order; ``partitions`` says how each partition was loaded.
    """

    def __init__(
        self,
        artifact: Artifact,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        source: str | None = None,
        verified: ParsedManifest | None = None,
        strict: bool = False,
        fault_inject: Collection[str] | None = None,
    ) -> None:
        """``verified``: the parsed manifest when ``artifact`` was just verified by
        ``Artifact.read`` (skips hashing the members again); else ``artifact.check()``."""
        parsed = verified if verified is not None else artifact.check()
        self.source = source
        self.strict = strict
        env_faults = os.environ.get("HCOMPILE_FAULT_INJECT", "")
        self.fault_inject = set(fault_inject if fault_inject is not None else
                                (k.strip() for k in env_faults.split(",") if k.strip()))
        self.inputs: list[TensorSpec] = list(parsed.inputs)
        self.outputs: list[TensorSpec] = list(parsed.outputs)
        # Decide everything and decode every weight before writing or loading any code.
        choices = [choose_code(p) for p in parsed.partitions]
        for p, choice in zip(parsed.partitions, choices, strict=True):
            if choice.fallback:
                self._fall_back(p, "; ".join(unavailable_reasons(p)))
        host_weights = {
            name: host_ready(decode_weight(spec, artifact.members[spec.member], source))
            for name, spec in parsed.weights.items()
        }
        self._weights = {name: to_ffi(array) for name, array in host_weights.items()}
        self._host_weights = host_weights  # the tensors above borrow this memory
        options = RunnerOptions(Path(cache_dir) if cache_dir else default_cache_dir())
        self._options = options
        self._steps: list[_Step] = []
        self.partitions: list[PartitionInfo] = []
        for p, choice in zip(parsed.partitions, choices, strict=True):
            params = [self._weights[n] for n in p.params]
            blob = artifact.members[choice.code.member]
            runner = choice.runner(p, choice.code, blob, params, options)
            self._steps.append(_Step(p, runner, params, artifact.members.__getitem__,
                                     choice.fallback))
            self.partitions.append(
                PartitionInfo(
                    id=p.id,
                    target=p.target,
                    device=p.device,
                    runs_on=choice.runner.runs_on,
                    code_format=choice.code.format,
                    member=choice.code.member,
                    fallback=choice.fallback,
                    inputs=p.inputs,
                    params=p.params,
                    outputs=p.outputs,
                )
            )
        # The shard-level outputs the partitions produce; self.inputs/outputs are the model's.
        self._signature_out = self.outputs
        self.sharding = Sharding.from_manifest(artifact.manifest, parsed, source)
        if self.sharding is not None:
            self.inputs, self.outputs = self.sharding.inputs, self.sharding.outputs
        specs = [s.spec for s in self._steps]
        # Outputs consumed by later partitions stay on their device (residency.py).
        self._resident = residency.plan([s.runner for s in self._steps],
                                        [p.outputs for p in specs],
                                        (o.name for o in self._signature_out))
        self._graph = StepGraph([(p.inputs, p.outputs) for p in specs])
        self._scheduler = Scheduler(self._graph, [p.inputs for p in specs],
                                    [p.outputs for p in specs],
                                    [f"partition {p.id}" for p in specs], self._run_index,
                                    self._device_of)
        self._overlap = self._graph.can_overlap([s.runner.runs_on for s in self._steps])
        # Stop the device threads when the executor goes away (they do not reference it).
        self._finalizer = weakref.finalize(self, self._scheduler.workers.close)
        # One partition, no sharding (most models on the CPU): run() skips the machinery.
        self._direct = DirectPath(self) if DirectPath.applies(self) else None

    # -- running -----------------------------------------------------------------------------

    def run(self, inputs: Mapping[str, np.ndarray], *,
            trace: Trace | None = None) -> dict[str, np.ndarray]:
        """Run the model; return ``{output name: np.ndarray}`` in the model's output order.

        ``trace``: record every partition and copy as a span (see :mod:`.trace`).
        """
        if trace is None and self._direct is not None:
            return self._direct.run(inputs)
        env = self._environment(inputs)
        if trace is None and not self._overlap:
            self._run_inline(env)
        else:
            env = self._scheduler.submit(env, trace).wait()
        return self._collect(env)

    def run_many(self, requests: Iterable[Mapping[str, np.ndarray]], *,
                 depth: int | None = None,
                 trace: Trace | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Run each request of ``requests``; yield their outputs in order (pipelined).

        Up to ``depth`` requests are in flight at once (default: two per device kind), so
        while one device works on request *n* another can work on request *n + 1*; with a
        single device the requests simply run one after another. Inputs are checked as each
        request is taken; an error stops the iteration.
        """
        devices = {s.runner.runs_on for s in self._steps}
        if len(devices) <= 1 and trace is None:  # one device: nothing to overlap
            for inputs in requests:
                yield self.run(inputs)
            return
        depth = max(1, depth if depth is not None else 2 * len(devices))
        in_flight: deque[Any] = deque()
        for inputs in requests:
            in_flight.append(self._scheduler.submit(self._environment(inputs), trace))
            if len(in_flight) >= depth:
                yield self._collect(in_flight.popleft().wait())
        while in_flight:
            yield self._collect(in_flight.popleft().wait())

    def close(self) -> None:
        """Stop the device worker threads (also done when the executor is collected)."""
        self._finalizer()

    def _environment(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Checked inputs (split into shards when sharded) and the weights, as tensors."""
        arrays = check_inputs(self.inputs, inputs)
        if self.sharding is not None:
            arrays = self.sharding.split(arrays)
        env: dict[str, Any] = dict(self._weights)
        env.update((name, to_ffi(array)) for name, array in arrays.items())
        return env

    def _collect(self, env: dict[str, Any]) -> dict[str, np.ndarray]:
        outputs = {spec.name: self._output(spec, env[spec.name]) for spec in self._signature_out}
        if self.sharding is not None:
            return self.sharding.gather(outputs)
        return outputs

    def _run_inline(self, env: dict[str, Any]) -> None:
        for i, step in enumerate(self._steps):
            args = [env[n] for n in step.spec.inputs]
            if self._resident:  # no copy steps here: download what this device cannot read
                args = residency.localize(args, step.runner.runs_on)
            env.update(zip(step.spec.outputs, self._run_index(i, args), strict=True))

    def _device_of(self, index: int) -> str:
        return self._steps[index].runner.runs_on

    def _run_index(self, index: int, args: list[Any]) -> list[Any]:
        step = self._steps[index]
        results = self._run_step(step, args)
        names_out = step.spec.outputs
        if len(results) != len(names_out):
            raise ArtifactError(
                f"partition {step.spec.id} returned {len(results)} tensors, but the "
                f"manifest lists {len(names_out)} outputs {list(names_out)}",
                hint="the artifact is inconsistent; recompile the model",
                source=self.source,
            )
        return results

    def _run_step(self, step: _Step, args: list[Any]) -> list[Any]:
        runner = step.runner
        try:
            if runner.runs_on in self.fault_inject:
                raise DeviceError(f"injected fault on the {runner.runs_on} device "
                                  "(HCOMPILE_FAULT_INJECT)")
            return runner.run(args)
        except Exception as err:
            if step.on_fallback or step.spec.fallback is None:
                raise
            if isinstance(err, HcompileError) and not isinstance(err, DeviceError):
                raise
            self._switch_to_fallback(step, runner, f"it failed at run time: {err}")
        return step.runner.run(residency.localize(args, step.runner.runs_on))

    def _switch_to_fallback(self, step: _Step, failed: PartitionRunner, why: str) -> None:
        with step.lock:
            if step.runner is not failed:
                return  # another thread switched already
            self._fall_back(step.spec, why)
            code = step.spec.fallback
            assert code is not None
            runner_cls = RUNNERS[code.format]
            step.runner = runner_cls(step.spec, code, step.blob_of(code.member), step.params,
                                     self._options)
            step.on_fallback = True
            self._overlap = self._graph.can_overlap([s.runner.runs_on for s in self._steps])
            info = self.partitions[self._steps.index(step)]
            self.partitions[self._steps.index(step)] = PartitionInfo(
                **{**info.__dict__, "runs_on": runner_cls.runs_on, "code_format": code.format,
                   "member": code.member, "fallback": True})

    def _fall_back(self, spec: PartitionSpec, why: str) -> None:
        message = (f"partition {spec.id} (target {spec.target}) runs on its CPU fallback: "
                   f"{why}")
        if self.strict:
            raise DeviceError(message, hint="drop --strict to allow CPU fallback, or run "
                                            f"where a {spec.target} device is available",
                              source=self.source)
        log.warning(message)

    def _output(self, spec: TensorSpec, tensor: Any) -> np.ndarray:
        array = to_numpy(tensor)
        if array.shape == spec.shape and array.dtype.name == storage_dtype(spec.dtype):
            array = from_storage(array, spec.dtype)  # narrow types come back as their bits
        if array.shape != spec.shape or array.dtype.name != spec.dtype:
            raise ArtifactError(
                f"output {spec.name!r} came out as {array.dtype.name}{list(array.shape)}, but "
                f"the manifest says {spec.dtype}{list(spec.shape)}",
                hint="the artifact is inconsistent; recompile the model",
                source=self.source,
            )
        return array

    def __repr__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        parts = ", ".join(f"#{p.id} {p.target}->{p.runs_on}" for p in self.partitions)
        return f"Executor(inputs=[{ins}], outputs=[{outs}], partitions=[{parts}])"


def load(
    artifact: str | os.PathLike[str] | Artifact,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    max_total_size: int = DEFAULT_MAX_TOTAL_SIZE,
    strict: bool = False,
    fault_inject: Collection[str] | None = None,
) -> Executor:
    """Verify and load an artifact (a ``.hca`` path or an in-memory :class:`Artifact`).

    ``cache_dir`` overrides where CPU code is unpacked (default: ``$HCOMPILE_CACHE_DIR``,
    ``$XDG_CACHE_HOME/hcompile`` or ``~/.cache/hcompile``); ``max_total_size`` bounds the
    unpacked size of the file (the zip-bomb guard); ``strict`` turns CPU fallback into a
    :class:`DeviceError`; ``fault_inject`` names device kinds whose runs fail (for tests).
    """
    options: dict[str, Any] = {"cache_dir": cache_dir, "strict": strict,
                               "fault_inject": fault_inject}
    if isinstance(artifact, Artifact):
        return Executor(artifact, **options)
    source = os.fspath(artifact)
    art = Artifact.read(source, max_total_size=max_total_size)
    return Executor(art, source=source, verified=art.parsed(), **options)
