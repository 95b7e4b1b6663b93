"""``--report REPORT.html``: one self-contained page explaining a plan.

The page holds (inline SVG and CSS, no scripts, nothing fetched):
* a summary: partitioner, planning time, predicted latency, each device alone;
* a timeline of the simulated run: one row per device and per link, partitions and copies;
* the graph: nodes in execution order, coloured by target, partitions boxed, copies between
  devices drawn as dashed red edges labelled with their size;
* tables of partitions, transfers and nodes (reason, estimated time on every target).

    write_report("r.html", graph, plan_json(graph, partitions, summary))
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from hcompile.ir import Graph

COLORS = {"cpu": "#4e79a7", "gpu": "#59a14f", "fpga": "#f28e2b"}
ROW, LANE, NODE_W, NODE_H, LEFT = 30, 200, 180, 22, 60


def color(target: str | None) -> str:
    return COLORS.get(target or "", "#9c9c9c")


def write_report(path: str | Path, graph: Graph, plan: dict[str, Any]) -> Path:
    path = Path(path)
    path.write_text(render_report(graph, plan), encoding="utf-8")
    return path


def render_report(graph: Graph, plan: dict[str, Any]) -> str:
    title = f"hcompile plan: {graph.name}"
    body = [f"<h1>{_e(title)}</h1>", _summary(plan), "<h2>Simulated run</h2>",
            _timeline(plan), "<h2>Graph</h2>", _legend(plan), _graph_svg(graph, plan),
            "<h2>Partitions</h2>", _partition_table(plan), "<h2>Transfers</h2>",
            _transfer_table(plan), "<h2>Nodes</h2>", _node_table(plan)]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;width:11px;height:11px;border-radius:2px;margin:0 4px 0 10px;
vertical-align:-1px}.best{font-weight:700}.muted{color:#888}
.kv td:first-child{font-weight:600;background:#fafafa}
svg text{font-family:system-ui,sans-serif}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt_ms(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{value:.3g}" if value < 100 else f"{value:.1f}"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _summary(plan: dict[str, Any]) -> str:
    rows = [("partitioner", plan.get("partitioner", "?")),
            ("planning time", f"{_fmt_ms(plan.get('solve_ms'))} ms"),
            ("predicted latency", f"{_fmt_ms(plan.get('predicted_ms'))} ms"),
            ("partitions", str(len(plan["partitions"]))),
            ("transfers", str(len(plan.get("transfers", []))))]
    for target, ms in plan.get("single_device_ms", {}).items():
        rows.append((f"{target} alone", f"{_fmt_ms(ms)} ms"))
    for target, profile in plan.get("devices", {}).items():
        rows.append((f"{target} profile", profile))
    notes = plan.get("notes", {})
    if "optimal" in notes:
        rows.append(("proven optimal", "yes" if notes["optimal"] else "no (search timed out)"))
    return "<table class=\"kv\">" + "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _legend(plan: dict[str, Any]) -> str:
    targets = sorted({p["target"] for p in plan["partitions"]})
    chips = "".join(f"<span class=\"chip\" style=\"background:{color(t)}\"></span>{_e(t)}"
                    for t in targets)
    return (f"<p>{chips}<span class=\"muted\"> — boxes are partitions; dashed red edges "
            "are copies between devices.</span></p>")


def _timeline(plan: dict[str, Any]) -> str:
    parts = [p for p in plan["partitions"] if "start_ms" in p]
    copies = [t for t in plan.get("transfers", []) if "start_ms" in t]
    if not parts:
        return "<p class=\"muted\">(no simulation in this plan)</p>"
    rows = list(dict.fromkeys(p["target"] for p in parts))
    rows += list(dict.fromkeys(f"link {t['src_target']}→{t['dst_target']}" for t in copies))
    end = max([p["end_ms"] for p in parts] + [t["end_ms"] for t in copies] + [1e-9])
    width, label_w, row_h = 900, 130, 26
    scale = (width - label_w - 50) / end
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" "
           f"height=\"{row_h * len(rows) + 30}\" role=\"img\">"]
    for i, name in enumerate(rows):
        y = i * row_h
        out.append(f"<text x=\"4\" y=\"{y + 17}\" font-size=\"12\">{_e(name)}</text>"
                   f"<line x1=\"{label_w}\" x2=\"{width}\" y1=\"{y + row_h}\" y2=\"{y + row_h}\" "
                   "stroke=\"#eee\"/>")

    def bar(row: str, start: float, stop: float, fill: str, tip: str, text: str) -> None:
        y = rows.index(row) * row_h + 4
        x = label_w + start * scale
        w = max((stop - start) * scale, 1.5)
        out.append(f"<g><title>{_e(tip)}</title><rect x=\"{x:.1f}\" y=\"{y}\" width=\"{w:.1f}\" "
                   f"height=\"{row_h - 8}\" fill=\"{fill}\" rx=\"2\"/>")
        if w > 8 * len(text):
            out.append(f"<text x=\"{x + 3:.1f}\" y=\"{y + 13}\" font-size=\"11\" "
                       f"fill=\"#fff\">{_e(text)}</text>")
        out.append("</g>")

    for p in parts:
        bar(p["target"], p["start_ms"], p["end_ms"], color(p["target"]),
            f"partition {p['id']} on {p['target']}: {len(p['nodes'])} nodes, "
            f"{_fmt_ms(p['start_ms'])}–{_fmt_ms(p['end_ms'])} ms", f"#{p['id']}")
    for t in copies:
        bar(f"link {t['src_target']}→{t['dst_target']}", t["start_ms"], t["end_ms"], "#e15759",
            f"copy {t['tensor']} ({_fmt_bytes(t['bytes'])}) {t['src_target']}→{t['dst_target']}, "
            f"{_fmt_ms(t['start_ms'])}–{_fmt_ms(t['end_ms'])} ms", t["tensor"])
    y = row_h * len(rows) + 18
    for k in range(6):
        ms = end * k / 5
        x = label_w + ms * scale
        out.append(f"<text x=\"{x:.0f}\" y=\"{y}\" font-size=\"10\" fill=\"#666\">"
                   f"{_fmt_ms(ms)} ms</text>")
    out.append("</svg>")
    return "".join(out)


def _lanes(graph: Graph) -> dict[str, int]:
    """A column per node: a node continues its first producer's column when it is that
    producer's first consumer; otherwise it takes the leftmost column not still in use."""
    producers = graph.producers()
    consumers = graph.consumers()
    lane: dict[str, int] = {}
    pending: dict[int, int] = {}  # lane -> consumers still to place of its last node
    for node in graph.nodes:
        chosen = None
        for name in node.inputs:
            prod = producers.get(name)
            if prod is not None and prod.name in lane:
                first = next((c for c in consumers.get(name, [])), None)
                if first is node and pending.get(lane[prod.name], 0) <= 1:
                    chosen = lane[prod.name]
                break
        for name in dict.fromkeys(node.inputs):
            prod = producers.get(name)
            if prod is not None and prod.name in lane and pending.get(lane[prod.name], 0) > 0:
                pending[lane[prod.name]] -= 1
        if chosen is None:
            chosen = next(i for i in range(len(graph.nodes) + 1) if pending.get(i, 0) <= 0)
        lane[node.name] = chosen
        pending[chosen] = sum(len(consumers.get(o, [])) for o in node.outputs if o)
    return lane


def _graph_svg(graph: Graph, plan: dict[str, Any]) -> str:
    lane = _lanes(graph)
    row = {node.name: i for i, node in enumerate(graph.nodes)}
    info = {n["name"]: n for n in plan["nodes"]}
    part_of = {name: p for p in plan["partitions"] for name in p["nodes"]}
    lanes = max(lane.values(), default=0) + 1
    width = LEFT + lanes * LANE + 40
    height = len(graph.nodes) * ROW + 40
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           "role=\"img\"><defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"7\" refY=\"4\" "
           "markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" "
           "fill=\"#777\"/></marker></defs>"]

    def xy(name: str) -> tuple[float, float]:
        return LEFT + lane[name] * LANE, 20 + row[name] * ROW

    for part in plan["partitions"]:  # boxes first, under everything
        names = [n for n in part["nodes"] if n in row]
        if not names:
            continue
        x0 = min(xy(n)[0] for n in names) - 8
        x1 = max(xy(n)[0] for n in names) + NODE_W + 8
        y0 = min(xy(n)[1] for n in names) - 4
        y1 = max(xy(n)[1] for n in names) + NODE_H + 4
        c = color(part["target"])
        out.append(f"<g><title>partition {part['id']} on {_e(part['target'])}: "
                   f"{len(names)} nodes, est {_fmt_ms(part.get('est_ms'))} ms</title>"
                   f"<rect x=\"{x0}\" y=\"{y0}\" width=\"{x1 - x0}\" height=\"{y1 - y0}\" "
                   f"fill=\"{c}\" fill-opacity=\"0.08\" stroke=\"{c}\" stroke-width=\"1.5\" "
                   f"rx=\"6\"/><text x=\"6\" y=\"{y0 + 14}\" font-size=\"11\" fill=\"{c}\">"
                   f"P{part['id']} {_e(part['target'])}</text></g>")
    producers = graph.producers()
    types = graph.tensor_types()
    for node in graph.nodes:  # edges
        for name in dict.fromkeys(i for i in node.inputs if i):
            prod = producers.get(name)
            if prod is None:
                continue
            (x0, y0), (x1, y1) = xy(prod.name), xy(node.name)
            x0, y0, x1 = x0 + NODE_W / 2, y0 + NODE_H, x1 + NODE_W / 2
            src_t = part_of.get(prod.name, {}).get("target")
            dst_t = part_of.get(node.name, {}).get("target")
            cross = src_t != dst_t
            mid = (y0 + y1) / 2
            style = ("stroke=\"#e15759\" stroke-width=\"2\" stroke-dasharray=\"5 3\"" if cross
                     else "stroke=\"#999\" stroke-width=\"1\"")
            out.append(f"<path d=\"M{x0},{y0} C{x0},{mid} {x1},{mid} {x1},{y1}\" fill=\"none\" "
                       f"{style} marker-end=\"url(#arrow)\"/>")
            if cross:
                label = f"⇄ {_fmt_bytes(types[name].nbytes)}"
                out.append(f"<g><title>copy {_e(name)} {src_t}→{dst_t}</title><text "
                           f"x=\"{(x0 + x1) / 2 + 6}\" y=\"{mid + 4}\" font-size=\"10\" "
                           f"fill=\"#e15759\">{_e(label)}</text></g>")
    for node in graph.nodes:  # nodes on top
        x, y = xy(node.name)
        n = info.get(node.name, {})
        target = n.get("target")
        est = n.get("est_ms", {}).get(target)
        tip = (f"{node.name} ({node.op}) on {target}, reason: {n.get('reason')}"
               f"{': ' + n['detail'] if n.get('detail') else ''}; estimates: "
               + ", ".join(f"{t} {_fmt_ms(ms)} ms" for t, ms in n.get("est_ms", {}).items()))
        label = f"{node.op} · {_fmt_ms(est)} ms" if est is not None else node.op
        out.append(f"<g><title>{_e(tip)}</title><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" "
                   f"height=\"{NODE_H}\" rx=\"4\" fill=\"{color(target)}\"/><text x=\"{x + 6}\" "
                   f"y=\"{y + 15}\" font-size=\"11\" fill=\"#fff\">{_e(label[:30])}</text></g>")
    out.append("</svg>")
    return "<div style=\"overflow:auto;max-height:1400px;border:1px solid #eee\">" + \
        "".join(out) + "</div>"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(rows_cells) + "</tr>"
                   for rows_cells in ([c for c in r] for r in rows))
    return f"<table><tr>{th}</tr>{body}</table>"


def _td(value: Any, num: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    attr = f" class=\"{classes}\"" if classes else ""
    return f"<td{attr}>{_e(value)}</td>"


def _chip(target: str) -> str:
    return (f"<td><span class=\"chip\" style=\"background:{color(target)};margin-left:0\">"
            f"</span>{_e(target)}</td>")


def _partition_table(plan: dict[str, Any]) -> str:
    rows = [[_td(p["id"], True), _chip(p["target"]), _td(len(p["nodes"]), True),
             _td(f"{p.get('flops', 0):.3g}", True), _td(_fmt_ms(p.get("est_ms")), True),
             _td(_fmt_ms(p.get("start_ms")), True), _td(_fmt_ms(p.get("end_ms")), True),
             _td(_fmt_mb(p.get("memory_bytes")), True),
             _td(", ".join(p["inputs"])[:80]), _td(", ".join(p["outputs"])[:80])]
            for p in plan["partitions"]]
    return _table(["id", "target", "nodes", "FLOPs", "est ms", "start ms", "end ms",
                   "memory MB", "inputs", "outputs"], rows)


def _fmt_mb(nbytes: Any) -> str:
    """Estimated device memory (weights + peak activations, docs/resources.md)."""
    return "" if nbytes is None else f"{float(nbytes) / 1e6:.3g}"


def _transfer_table(plan: dict[str, Any]) -> str:
    transfers = plan.get("transfers", [])
    if not transfers:
        return "<p class=\"muted\">No copies between devices.</p>"
    rows = [[_td(t["tensor"]), _td("input" if t["src"] < 0 else f"P{t['src']}"),
             _td("output" if t["dst"] < 0 else f"P{t['dst']}"),
             _td(f"{t['src_target']}→{t['dst_target']}"), _td(_fmt_bytes(t["bytes"]), True),
             _td(_fmt_ms(t["est_ms"]), True)] for t in transfers]
    return _table(["tensor", "from", "to", "devices", "bytes", "est ms"], rows)


def _node_table(plan: dict[str, Any]) -> str:
    targets = list(dict.fromkeys(t for n in plan["nodes"] for t in n.get("est_ms", {})))
    part_of = {name: p["id"] for p in plan["partitions"] for name in p["nodes"]}
    rows = []
    for n in plan["nodes"]:
        cells = [_td(n["name"]), _td(n["op"]), _chip(n.get("target") or "?"),
                 _td(part_of.get(n["name"], ""), True), _td(n.get("reason") or ""),
                 _td(n.get("detail") or "")]
        for t in targets:
            ms = n.get("est_ms", {}).get(t)
            cells.append(_td(_fmt_ms(ms) if ms is not None else "n/a", True,
                             "best" if t == n.get("target") else ""))
        cells.append(_td(f"{n.get('flops', 0):.3g}", True))
        rows.append(cells)
    return _table(["node", "op", "target", "partition", "reason", "why",
                   *[f"{t} ms" for t in targets], "FLOPs"], rows)


def plan_table(plan: dict[str, Any]) -> Table:
    """The table printed after compile: partitions, targets, nodes, estimates, transfers."""
    from rich.table import Table

    title = (f"placement ({plan.get('partitioner', '?')}): predicted "
             f"{_fmt_ms(plan.get('predicted_ms'))} ms")
    alone = plan.get("single_device_ms", {})
    if alone:
        title += "; alone: " + ", ".join(f"{t} {_fmt_ms(ms)} ms" for t, ms in alone.items())
    table = Table(title=title, title_justify="left")
    for column in ("partition", "target", "nodes", "ops", "est ms", "copies in"):
        table.add_column(column)
    ops_of = {n["name"]: n["op"] for n in plan["nodes"]}
    copies: dict[int, list[str]] = {}
    for t in plan.get("transfers", []):
        copies.setdefault(t["dst"], []).append(f"{_fmt_bytes(t['bytes'])} {t['src_target']}")
    for p in plan["partitions"]:
        counts: dict[str, int] = {}
        for name in p["nodes"]:
            counts[ops_of.get(name, "?")] = counts.get(ops_of.get(name, "?"), 0) + 1
        ops = ", ".join(f"{k}×{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        table.add_row(str(p["id"]), p["target"], str(len(p["nodes"])), ops[:50],
                      _fmt_ms(p.get("est_ms")), ", ".join(copies.get(p["id"], []))[:40])
    return table
