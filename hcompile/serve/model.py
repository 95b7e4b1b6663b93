"""One served model: an executor, its public signature, request checks and (optional) batching.

Without batching a request must match the artifact's input shapes exactly. With
``max_batch=N`` the artifact must be compiled for batch N (every input and output has
leading dimension N, e.g. ``hcompile model.onnx --input-shape x=8,784``); the model's
metadata then shows the batch dimension as -1 and requests may carry 1..N rows, which the
:class:`~hcompile.serve.batcher.DynamicBatcher` stacks into full runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import numpy as np

from hcompile.errors import InputError, UsageError
from hcompile.serve.batcher import DynamicBatcher
from hcompile.serve.protocol import RequestError, bad, datatype_of


class ModelService:
    """Serves one executor under ``name``; ``infer`` is called from the event loop."""

    def __init__(self, executor: Any, name: str, *, max_batch: int | None = None,
                 batch_timeout_ms: float = 2.0) -> None:
        self.executor = executor
        self.name = name
        self.inputs = list(executor.inputs)
        self.outputs = list(executor.outputs)
        self.output_names = [s.name for s in self.outputs]
        self.batcher: DynamicBatcher | None = None
        self.inference_count = 0  # requests answered (Triton's statistics extension)
        self._runs = 0  # executor runs without batching
        if max_batch is not None:
            _check_batchable(self.inputs, self.outputs, max_batch)
            pads = {s.name: (tuple(s.shape), s.dtype) for s in self.inputs}
            self.batcher = DynamicBatcher(executor.run, max_batch, batch_timeout_ms / 1000, pads)

    @property
    def max_batch(self) -> int | None:
        return self.batcher.batch if self.batcher else None

    def metadata(self) -> dict[str, Any]:
        def tensor(spec: Any) -> dict[str, Any]:
            shape = list(spec.shape)
            if self.batcher is not None:
                shape[0] = -1
            return {"name": spec.name, "datatype": datatype_of(spec.dtype), "shape": shape}

        doc: dict[str, Any] = {
            "name": self.name, "versions": ["1"], "platform": "hcompile",
            "inputs": [tensor(s) for s in self.inputs],
            "outputs": [tensor(s) for s in self.outputs],
        }
        if self.batcher is not None:
            doc["parameters"] = {"max_batch_size": self.batcher.batch,
                                 "batch_timeout_ms": self.batcher.timeout_s * 1000}
        return doc

    async def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the signature (400 on any mismatch), then run them."""
        rows = self._check(inputs)
        if self.batcher is not None:
            outputs = await self.batcher.submit(inputs, rows)
        else:
            try:
                outputs = await anyio.to_thread.run_sync(self.executor.run, dict(inputs))
            except InputError as err:  # the executor's own checks: still the client's fault
                raise bad(str(err)) from None
            self._runs += 1
        self.inference_count += 1
        return outputs

    def statistics(self) -> dict[str, Any]:
        """Counts in the shape of Triton's statistics extension (``/v2/models/{name}/stats``)."""
        runs = self.batcher.runs if self.batcher is not None else self._runs
        return {"model_stats": [{"name": self.name, "version": "1",
                                 "inference_count": self.inference_count,
                                 "execution_count": runs}]}

    async def close(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    def _check(self, given: Mapping[str, np.ndarray]) -> int:
        """All problems at once, as one 400; returns the request's row count."""
        expected = {s.name: s for s in self.inputs}
        signature = ", ".join(f"{s.name}: {datatype_of(s.dtype)}{self._public_shape(s)}"
                              for s in self.inputs)
        problems = [f"unknown input {name!r}" for name in given if name not in expected]
        problems += [f"missing input {name!r}" for name in expected if name not in given]
        rows: set[int] = set()
        for name, array in given.items():
            spec = expected.get(name)
            if spec is None:
                continue
            if array.dtype.name != spec.dtype:
                problems.append(f"input {name!r} has datatype {datatype_of(array.dtype.name)}, "
                                f"the model expects {datatype_of(spec.dtype)}")
            problem = self._shape_problem(spec, array.shape)
            if problem:
                problems.append(problem)
            elif self.batcher is not None:
                rows.add(array.shape[0])
        if len(rows) > 1:
            problems.append(f"the inputs disagree on the batch size: {sorted(rows)}")
        if problems:
            raise RequestError(400, "; ".join(problems) +
                               f" (model {self.name!r} takes {signature})")
        return rows.pop() if rows else 1

    def _public_shape(self, spec: Any) -> list[int]:
        shape = list(spec.shape)
        if self.batcher is not None:
            shape[0] = -1
        return shape

    def _shape_problem(self, spec: Any, shape: tuple[int, ...]) -> str | None:
        want = tuple(spec.shape)
        if self.batcher is None:
            if shape != want:
                return f"input {spec.name!r} has shape {list(shape)}, expected {list(want)}"
            return None
        if len(shape) != len(want) or shape[1:] != want[1:]:
            return (f"input {spec.name!r} has shape {list(shape)}, expected "
                    f"{self._public_shape(spec)} (batch 1..{self.batcher.batch})")
        if not 1 <= shape[0] <= self.batcher.batch:
            return (f"input {spec.name!r} has batch {shape[0]}, but this server batches at "
                    f"most {self.batcher.batch} rows per request (--max-batch)")
        return None


def _check_batchable(inputs: list[Any], outputs: list[Any], max_batch: int) -> None:
    if max_batch < 1:
        raise UsageError(f"--max-batch must be at least 1, got {max_batch}")
    wrong = [s for s in [*inputs, *outputs] if not s.shape or s.shape[0] != max_batch]
    if wrong:
        listed = ", ".join(f"{s.name} {list(s.shape)}" for s in wrong)
        fix = " ".join(f"--input-shape {s.name}={','.join(map(str, (max_batch, *s.shape[1:])))}"
                       for s in inputs if s.shape)
        raise UsageError(
            f"--max-batch {max_batch} needs an artifact compiled for batch {max_batch} (every "
            f"input and output batch-major with leading dimension {max_batch}), but {listed}",
            hint=f"recompile the model with {fix}")
