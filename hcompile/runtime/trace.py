"""Run traces in Chrome's trace-event format (opens in Perfetto and ``chrome://tracing``).

    trace = Trace()
    exe.run(inputs, trace=trace)            # or exe.run_many(requests, trace=trace)
    trace.save("trace.json")

One track (a Chrome "thread") per device (``cpu``, ``fpga``, ``gpu``) and one per link
(``link cpu->fpga``); partitions are spans named ``partition <id>`` on their device's track,
copies are spans named ``copy <tensor>`` on their link's track. Every span also carries the
request number (``args.request``), so pipelined requests can be told apart.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Chrome trace "process" that holds every hcompile track
_PID = 1


@dataclass(frozen=True)
class Span:
    """One timed piece of work: ``start``/``end`` from ``time.perf_counter`` (seconds)."""

    track: str
    name: str
    start: float
    end: float
    args: dict[str, Any] = field(default_factory=dict)


class Trace:
    """Collects spans from any thread; ``to_chrome`` / ``save`` write the trace-event JSON."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._origin = time.perf_counter()
        self._lock = threading.Lock()
        self._requests = 0

    def next_request(self) -> int:
        """A number for the next request recorded into this trace (0, 1, ...)."""
        with self._lock:
            self._requests += 1
            return self._requests - 1

    def add(self, track: str, name: str, start: float, end: float, **args: Any) -> None:
        self.spans.append(Span(track, name, start, end, args))  # list.append is atomic

    def tracks(self) -> list[str]:
        """Track names: devices, then links, each alphabetically."""
        return sorted({s.track for s in self.spans}, key=lambda t: (t.startswith("link "), t))

    def to_chrome(self) -> dict[str, Any]:
        """The trace as a Chrome JSON object (``{"traceEvents": [...]}``), times in µs."""
        tids = {track: i + 1 for i, track in enumerate(self.tracks())}
        events: list[dict[str, Any]] = [
            {"ph": "M", "pid": _PID, "tid": 0, "name": "process_name",
             "args": {"name": "hcompile"}},
        ]
        for track, tid in tids.items():
            events.append({"ph": "M", "pid": _PID, "tid": tid, "name": "thread_name",
                           "args": {"name": track}})
            events.append({"ph": "M", "pid": _PID, "tid": tid, "name": "thread_sort_index",
                           "args": {"sort_index": tid}})
        for s in sorted(self.spans, key=lambda s: s.start):
            events.append({
                "ph": "X", "pid": _PID, "tid": tids[s.track], "name": s.name,
                "cat": "copy" if s.track.startswith("link ") else "partition",
                "ts": round((s.start - self._origin) * 1e6, 3),
                "dur": round(max(s.end - s.start, 0.0) * 1e6, 3),
                "args": s.args,
            })
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_chrome(), indent=None) + "\n")
        return path


def link_track(src: str, dst: str) -> str:
    return f"link {src}->{dst}"
