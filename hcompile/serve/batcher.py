"""Dynamic batching: requests of a few rows are stacked into one run of a batch-N executor.

An artifact is compiled for one fixed batch N. The batcher takes requests whose leading
(batch) dimension is 1..N, concatenates queued requests along axis 0 until N rows are
collected or ``timeout_s`` has passed since the first of them arrived, pads the remaining
rows with zeros, runs the executor once and hands every request its own rows of the
outputs. Padding rows cost compute but never change another row's result: only models
whose rows are independent (every input and output batch-major) may be batched, which
``ModelService`` checks when it is created.

One batch runs at a time (the next one is collected while it runs); a failed run fails
exactly the requests in that batch, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("hcompile")

RunFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Pending:
    feeds: Mapping[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]


class DynamicBatcher:
    """Collects batch-major requests into runs of ``run`` at batch ``batch``."""

    def __init__(self, run: RunFn, batch: int, timeout_s: float,
                 pad_shapes: Mapping[str, tuple[tuple[int, ...], str]]) -> None:
        """``pad_shapes``: input name -> (full batch-N shape, dtype) for the padding rows."""
        self._run = run
        self.batch = batch
        self.timeout_s = timeout_s
        self._pad_shapes = pad_shapes
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._carry: _Pending | None = None
        self._busy = False  # a batch is being collected or run
        self.runs = 0  # number of executor runs, for tests and logs
        self.rows_run = 0

    async def submit(self, feeds: Mapping[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Queue one request of ``rows`` rows (1..batch) and wait for its outputs."""
        if self._task is None or self._task.done():
            # Started lazily, inside the serving event loop (uvicorn, or a Ray replica's).
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop(), name="hcompile-batcher")
        assert self._queue is not None
        future: asyncio.Future[dict[str, np.ndarray]] = (
            asyncio.get_running_loop().create_future())
        self._queue.put_nowait(_Pending(feeds, rows, future))
        return await asyncio.shield(future)

    async def stop(self) -> None:
        """Finish every queued request, then stop the loop."""
        if self._task is None:
            return
        assert self._queue is not None
        while self._busy or not self._queue.empty() or self._carry is not None:
            await asyncio.sleep(0.01)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            try:
                await self._run_batch(batch)
            finally:
                self._busy = False

    async def _collect(self) -> list[_Pending]:
        assert self._queue is not None
        first = self._carry or await self._queue.get()
        self._carry = None
        self._busy = True
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self.timeout_s
        while rows < self.batch:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), left)
                except TimeoutError:
                    break
            if rows + item.rows > self.batch:
                self._carry = item  # does not fit: it starts the next batch
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _run_batch(self, batch: list[_Pending]) -> None:
        rows = sum(p.rows for p in batch)
        try:
            feeds = {}
            for name, (shape, dtype) in self._pad_shapes.items():
                parts = [p.feeds[name] for p in batch]
                if rows < self.batch:
                    parts.append(np.zeros((self.batch - rows, *shape[1:]), dtype=dtype))
                feeds[name] = np.concatenate(parts, axis=0)
            outputs = await asyncio.to_thread(self._run, feeds)
        except Exception as err:  # fail this batch's requests; the loop goes on
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        self.runs += 1
        self.rows_run += rows
        start = 0
        for p in batch:
            if not p.future.done():
                p.future.set_result({name: np.ascontiguousarray(value[start:start + p.rows])
                                     for name, value in outputs.items()})
            start += p.rows
