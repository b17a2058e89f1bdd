"""A metric's or trait's lineage as a graph down to the columns of the sources, laid out in
columns for a server-side SVG: the definition, the metrics and measures it uses, the
warehouse columns they read, and the source columns those come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GLOSSARY_TTL_S = 60.0  # the entries' lineage is worked out by sqlglot: a second on a demo
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 230, 34, 70, 14, 10
LEVELS = ("definition", "uses", "warehouse", "source")


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {label, level}
    edges: set[tuple[str, str]] = field(default_factory=set)

    def add(self, node: str, label: str, level: int, parent: str | None = None) -> None:
        self.nodes.setdefault(node, {"label": label, "level": level})
        if parent is not None:
            self.edges.add((parent, node))


def glossary_entries(state: Any, project: Any) -> list[dict[str, Any]]:
    """The project's glossary entries (``Project.glossary``), kept a minute per server:
    read again at once when the definition changes (an approval reloads it), and at most a
    minute after a run changed the persons counted."""
    import time

    cached = getattr(state, "glossary_cache", None)
    now = time.monotonic()
    if cached and cached[0] is project.definition and now - cached[1] < GLOSSARY_TTL_S:
        return cached[2]
    entries = project.glossary()
    state.glossary_cache = (project.definition, now, entries)
    return entries


def _source_column(project: Any, table: str, column: str) -> tuple[str, str] | None:
    """``stg_<source>.<column>`` -> (node id, label) of the source's own column."""
    if not table.startswith("stg_"):
        return None
    source = project.sources.get(table[4:])
    if source is None:
        return None
    mapped = source.columns.get(column)
    if mapped is None:
        return None
    if isinstance(mapped, str):
        return f"src:{source.name}.{mapped}", f"{source.name} · {mapped}"
    if getattr(mapped, "column", None):
        return f"src:{source.name}.{mapped.column}", f"{source.name} · {mapped.column}"
    return f"const:{source.name}.{column}", f"{source.name} · = {mapped.value!r}"


def _columns(project: Any, g: Graph, parent: str, columns: list[str]) -> None:
    for item in columns:
        table, _, column = item.partition(".")
        g.add(f"wh:{item}", item, 2, parent)
        found = _source_column(project, table, column)
        if found:
            g.add(found[0], found[1], 3, f"wh:{item}")


def build(project: Any, entries: list[dict[str, Any]], kind: str, name: str) -> Graph | None:
    """The graph of one glossary entry; None when there is no such entry."""
    by_key = {(e["kind"], e["name"]): e for e in entries}
    entry = by_key.get((kind, name))
    if entry is None:
        return None
    g = Graph()
    top = f"{kind}:{name}"
    g.add(top, f"{kind} {name}", 0)
    if kind == "trait":
        _columns(project, g, top, list(entry.get("lineage") or []))
        return g
    pm = project.definition.metrics
    seen: set[str] = set()

    def metric(node: str, metric_name: str) -> None:
        if metric_name in seen:
            return
        seen.add(metric_name)
        e = by_key.get(("metric", metric_name), {})
        if e.get("lineage"):
            _columns(project, g, node, list(e["lineage"]))
        for dep in e.get("depends_on") or []:
            if dep != metric_name:
                g.add(f"metric:{dep}", f"metric {dep}", 1, node)
                metric(f"metric:{dep}", dep)
        for m in e.get("measures") or []:
            found = pm.measure(m) if pm is not None else None
            if found is None:
                continue
            model, measure = found
            g.add(f"measure:{m}", f"measure {m} ({measure.agg})", 1, node)
            expr = measure.expr or measure.name
            g.add(f"wh:{model.model}.{expr}", f"{model.model}.{expr}", 2, f"measure:{m}")

    metric(top, name)
    return g


def layout(g: Graph) -> dict[str, Any]:
    """Boxes placed in one column per level and the lines between them (SVG units)."""
    columns: dict[int, list[str]] = {}
    for node, info in g.nodes.items():
        columns.setdefault(info["level"], []).append(node)
    boxes = {}
    for level, nodes in columns.items():
        for i, node in enumerate(sorted(nodes, key=lambda n: g.nodes[n]["label"])):
            boxes[node] = {"x": PAD + level * (BOX_W + GAP_X), "y": PAD + i * (BOX_H + GAP_Y),
                           "label": g.nodes[node]["label"], "level": level}
    lines = [{"x1": boxes[a]["x"] + BOX_W, "y1": boxes[a]["y"] + BOX_H / 2,
              "x2": boxes[b]["x"], "y2": boxes[b]["y"] + BOX_H / 2}
             for a, b in sorted(g.edges) if a in boxes and b in boxes]
    rows = max((len(n) for n in columns.values()), default=1)
    levels = max(columns, default=0) + 1
    return {"boxes": list(boxes.values()), "lines": lines, "box_w": BOX_W, "box_h": BOX_H,
            "width": 2 * PAD + levels * BOX_W + (levels - 1) * GAP_X,
            "height": 2 * PAD + rows * (BOX_H + GAP_Y) - GAP_Y,
            "sources": sorted(b["label"] for b in boxes.values() if b["level"] == 3)}
