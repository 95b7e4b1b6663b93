"""hcompile.report: the self-contained HTML plan report and the compile summary table."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hcompile.devices import load_devices
from hcompile.passes import PassOptions, run_pipeline
from hcompile.plan import build_partitions, plan_json
from hcompile.report import COLORS, plan_table, render_report, write_report


@pytest.fixture(scope="module")
def mixed(zoo_path, tmp_path_factory):
    """ResNet-18 on cpu + an Alveo U250: several partitions and copies."""
    from hcompile.frontend import import_model

    path = tmp_path_factory.mktemp("devices") / "d.toml"
    path.write_text('[cpu]\nbase = "host-generic"\n[fpga]\nbase = "alveo-u250"\n')
    graph, _ = import_model(zoo_path("resnet18"))
    options = PassOptions(targets=["cpu", "fpga"], extra={"devices": load_devices(path)})
    run_pipeline(graph, options)
    plan = plan_json(graph, build_partitions(graph), options.extra["plan_summary"])
    assert len(plan["partitions"]) > 1 and plan["transfers"]
    return graph, plan


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)


def test_the_report_draws_every_node_partition_and_copy(mixed):
    graph, plan = mixed
    page = render_report(graph, plan)
    parsed = _Collect()
    parsed.feed(page)
    # One tooltip per node in the graph drawing, naming its target and reason.
    for node in graph.nodes:
        tip = next(t for t in parsed.titles if t.startswith(f"{node.name} ({node.op}) on "))
        assert f"on {node.meta['target']}, reason: {node.meta['reason']}" in tip
    # Partitions boxed and labelled, in their target's colour.
    for part in plan["partitions"]:
        assert f"P{part['id']} {part['target']}</text>" in page
    assert page.count(f'stroke="{COLORS["fpga"]}"') >= sum(
        p["target"] == "fpga" for p in plan["partitions"])
    # Copies between devices: dashed red edges with their size, and a timeline bar each.
    between = [t for t in plan["transfers"] if t["src"] >= 0 and t["dst"] >= 0]
    assert between
    assert page.count("stroke-dasharray") >= len(between)
    assert page.count("⇄") >= len(between)
    assert sum(t.startswith("copy ") for t in parsed.titles) >= len(plan["transfers"])
    # Tables: one row per partition and per node.
    assert parsed.tags.count("tr") >= 1 + len(plan["partitions"]) + len(plan["nodes"])
    assert f"{plan['predicted_ms']:.3g} ms" in page


def test_the_report_is_self_contained(mixed, tmp_path):
    graph, plan = mixed
    path = write_report(tmp_path / "r.html", graph, plan)
    page = path.read_text()
    assert "<script" not in page
    urls = set(re.findall(r"https?://[^\"' )]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_the_compile_table_lists_partitions_and_copies(mixed):
    from rich.console import Console

    _, plan = mixed
    table = plan_table(plan)
    assert table.row_count == len(plan["partitions"])
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert f"predicted {plan['predicted_ms']:.3g} ms" in text
    assert "KB" in text  # copies into partitions


def test_chromium_renders_the_report(mixed, tmp_path):
    """A real browser renders the page (`make test` installs Debian's chromium)."""
    assert shutil.which("chromium"), "chromium is missing: `make test` installs it (apt-get)"
    graph, plan = mixed
    page = write_report(tmp_path / "r.html", graph, plan)
    png = tmp_path / "r.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'ud'}",
                    "--window-size=1200,1600", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert png.exists() and png.stat().st_size > 20000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_plan_without_a_summary_still_renders(tmp_path):
    from hcompile.ir import Graph, Node, TensorType

    t = TensorType((4,), "float32")
    g = Graph("g", {"x": t}, ["y"], [Node("Relu", "r", ["x"], ["y"], output_types=[t],
                                          opset=17)])
    run_pipeline(g, PassOptions())
    plan = plan_json(g, build_partitions(g))
    assert plan["partitioner"] == "unknown" and "predicted_ms" not in plan
    page = render_report(g, plan)
    assert "(no simulation in this plan)" in page
    assert "<td>Relu</td>" in page and "single target" in page
    assert Path(write_report(tmp_path / "x.html", g, plan)).exists()
