"""Select the ONNX node tests to run and summarise outcomes by operator."""

from __future__ import annotations

import collections
import os
import re
import zlib

import pytest

from tests.conformance.exclusions import excluded_reason

#: 1 in SAMPLE tests runs in `make test`; `make conformance` sets HCOMPILE_CONFORMANCE=full.
SAMPLE = 6

_outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
_excluded: collections.Counter[str] = collections.Counter()


def _case_name(item: pytest.Item) -> str:
    return re.sub(r"_cpu$", "", item.name)


def _in_sample(name: str) -> bool:
    full = os.environ.get("HCOMPILE_CONFORMANCE") == "full"
    return full or zlib.crc32(name.encode()) % SAMPLE == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        if "conformance" not in str(item.fspath):
            keep.append(item)
            continue
        if item.name.endswith("_cuda"):
            drop.append(item)  # the CUDA twin of every case: the backend is CPU-only
            continue
        name = _case_name(item)
        reason = excluded_reason(name)
        if reason:
            _excluded[reason] += 1
        if reason or not _in_sample(name):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _op_of(name: str) -> str:
    base = re.sub(r"^test_", "", name)
    return base.split("_")[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controlling process under xdist too, so the summary sees every worker.
    if "conformance" not in report.nodeid or report.when != "call":
        return
    kind = "xfailed" if hasattr(report, "wasxfail") else report.outcome
    name = re.sub(r"_cpu$", "", report.nodeid.rsplit("::", 1)[-1])
    _outcomes[_op_of(name)][kind] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes and not _excluded:
        return
    write = terminalreporter.write_line
    totals: collections.Counter[str] = collections.Counter()
    for counts in _outcomes.values():
        totals.update(counts)
    write("")
    write("ONNX node tests through hcompile.backend:")
    write("  " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    for reason, count in sorted(_excluded.items()):
        write(f"  excluded {count}: {reason}")
    cells = [f"{op} {c['passed']}/{sum(c.values())}" for op, c in sorted(_outcomes.items())]
    for start in range(0, len(cells), 6):
        write("  " + "   ".join(cells[start:start + 6]))
