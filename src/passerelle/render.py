"""Rich renderings of results for the terminal (the CLI's only output code)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from passerelle.errors import Problem

if TYPE_CHECKING:
    from passerelle.pipeline import RunResult


def problems_text(problems: list[Problem]) -> Text:
    """One line a problem, ``file:line`` first so editors and terminals can jump to it."""
    text = Text()
    for p in problems:
        color = "yellow" if p.severity == "warning" else "red"
        text.append(p.location(), style="cyan")
        text.append(": ")
        text.append(p.message, style=color)
        if p.hint:
            text.append(f"  (hint: {p.hint})", style="dim")
        text.append("\n")
    return text


def run_summary(result: RunResult) -> Group:
    sources = Table(title="Sources", title_justify="left", header_style="bold")
    for col, justify in (("source", "left"), ("loaded", "right"), ("staged", "right"),
                         ("quarantined", "right"), ("invalid values", "right"), ("time", "right")):
        sources.add_column(col, justify=justify)  # type: ignore[arg-type]
    seconds: Counter[str] = Counter()
    for step in result.steps:
        seconds[step.target] += step.seconds
    names = sorted(set(result.loads) | set(result.stages) | {s.target for s in result.steps
                                                           if s.step in ("load", "stage")})
    quarantined: Counter[str] = Counter()
    for row in result.quarantine:
        quarantined[row["source"]] += row["rows"]
    for name in names:
        load, stage = result.loads.get(name), result.stages.get(name)
        failed = next((s for s in result.steps if s.target == name and s.status == "failed"), None)
        loaded = f"{load.rows_loaded:,}" if load else "[red]failed[/red]"
        if load and not load.rows_loaded and load.units_skipped:
            loaded = "[dim]unchanged[/dim]"
        if stage:
            sources.add_row(name, loaded, f"{stage.rows_staged:,}", _warn(quarantined[name]),
                            _warn(sum(stage.issues_by_field.values()), "yellow"),
                            f"{seconds[name]:.1f}s")
        elif name in result.unchanged:
            sources.add_row(name, loaded, "[dim]unchanged[/dim]", _warn(quarantined[name]), "",
                            f"{seconds[name]:.1f}s")
        else:
            why = failed.message.splitlines()[0][:60] if failed else ""
            sources.add_row(name, loaded, f"[red]{why}[/red]", "", "", f"{seconds[name]:.1f}s")
    parts: list = [sources]
    if result.quarantine:
        top = Table(title="In quarantine: top reasons", title_justify="left",
                    header_style="bold")
        top.add_column("source")
        top.add_column("reason")
        top.add_column("rows", justify="right")
        for row in result.quarantine[:5]:
            top.add_row(row["source"], row["reason"], f"{row['rows']:,}")
        parts.append(top)
    if result.checks:
        checks = Table(title="Checks", title_justify="left", header_style="bold")
        for col in ("check", "severity", "result", "owner"):
            checks.add_column(col)
        for c in result.checks:
            mark = "[green]pass[/green]" if c.passed else (
                "[red]FAIL[/red]" if c.severity == "error" else "[yellow]warn[/yellow]")
            checks.add_row(c.name, c.severity, f"{mark} {'' if c.passed else c.message}",
                           c.owner or "")
        parts.append(checks)
    steps = Table(title="Time per step", title_justify="left", header_style="bold")
    steps.add_column("step")
    steps.add_column("time", justify="right")
    per_step: Counter[str] = Counter()
    for s in result.steps:
        per_step[s.step] += s.seconds
    for name, secs in per_step.items():
        steps.add_row(name, f"{secs:.1f}s")
    parts.append(steps)
    return Group(*parts)


def _warn(n: int, color: str = "red") -> str:
    return f"[{color}]{n:,}[/{color}]" if n else "0"


def runs_table(rows: list[dict]) -> Table:
    table = Table(header_style="bold")
    for col in ("run", "step", "target", "started (UTC)", "seconds", "rows in", "rows out",
                "status", "message"):
        table.add_column(col)
    for r in rows:
        secs = (r["finished_at"] - r["started_at"]).total_seconds()
        status = {"ok": "[green]ok[/green]", "failed": "[red]failed[/red]"}.get(
            r["status"], f"[yellow]{r['status']}[/yellow]")
        table.add_row(r["run_id"][:22], r["step"], r["target"] or "",
                      f"{r['started_at']:%Y-%m-%d %H:%M:%S}", f"{secs:.1f}",
                      _n(r["rows_in"]), _n(r["rows_out"]), status, (r["message"] or "")[:80])
    return table


def _n(v: int | None) -> str:
    return "" if v is None else f"{v:,}"


def print_error(console: Console, reason: str, instruction: str | None) -> None:
    console.print(f"[bold red]Error:[/bold red] {reason}", highlight=False)
    if instruction:
        console.print(f"[dim]→ {instruction}[/dim]", highlight=False)


def identity_diff_text(diff: dict) -> Group:
    """What a candidate identity.yml would change, with examples."""
    head = Text()
    head.append(f"Persons now: {diff['persons_now']:,}  →  with the candidate rules: "
                f"{diff['persons_after']:,}\n", style="bold")
    m, s = diff["merges"], diff["splits"]
    head.append(f"Would merge: {m['groups']:,} groups of {m['persons']:,} current persons "
                f"({m['records']:,} records)\n")
    head.append(f"Would split: {s['groups']:,} persons into {s['persons']:,} parts "
                f"({s['records']:,} records)\n")
    if diff.get("model_trained_for_preview"):
        head.append("The comparisons changed: a model was trained for this preview only.\n",
                    style="dim")
    parts: list = [head]
    for title, key, inner in (("Merge examples", "merge_examples", "component"),
                              ("Split examples", "split_examples", "person_id")):
        if not diff[key]:
            continue
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column("group")
        table.add_column("parts (records)")
        for example in diff[key]:
            lines = [f"{part}: {', '.join(nodes)}" for part, nodes in example["parts"].items()]
            table.add_row(str(example.get(inner)), "\n".join(lines))
        parts.append(table)
    return Group(*parts)


def arrow_table(table) -> Table:  # table: pyarrow.Table
    out = Table(header_style="bold")
    for name in table.column_names:
        out.add_column(name, justify="right" if _numeric(table.schema.field(name).type)
                       else "left")
    for row in table.to_pylist():
        out.add_row(*[_cell(v) for v in row.values()])
    return out


def _numeric(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or \
        pa.types.is_decimal(arrow_type)


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def glossary_table(entries: list[dict]) -> Table:
    table = Table(header_style="bold", show_lines=True)
    for col in ("name", "kind", "definition", "owner", "status", "lineage", "used by"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["name"], e["kind"], e.get("definition") or e.get("description") or "",
                      e.get("owner") or "", e.get("status") or "",
                      "\n".join(e.get("lineage") or []), ", ".join(e.get("used_by") or []))
    return table


def rows_table(rows: list[dict], columns: tuple[str, ...]) -> Table | str:
    """A plain table of ``columns`` from dict rows (or a sentence when there is none)."""
    if not rows:
        return "Nothing yet."
    table = Table(header_style="bold")
    for col in columns:
        table.add_column(col.replace("_", " "))
    for row in rows:
        table.add_row(*[_cell(row.get(c)) if not isinstance(row.get(c), str) else row[c][:60]
                        for c in columns])
    return table


def experiment_text(analysis: dict) -> Group:
    """The verdict first, then each comparison with its interval."""
    head = Text()
    head.append(f"{analysis.get('experiment', '')}: {analysis.get('verdict', '')}\n",
                style="bold")
    srm = analysis.get("srm") or {}
    if srm.get("mismatch"):
        head.append(f"SAMPLE RATIO MISMATCH: {srm.get('message', '')}\n", style="bold red")
    for warning in analysis.get("warnings") or []:
        head.append(f"warning: {warning}\n", style="yellow")
    table = Table(header_style="bold")
    for col in ("variant", "metric", "lift", "95% interval", "p (adjusted)", "chance to win",
                "decision"):
        table.add_column(col)
    for c in analysis.get("comparisons") or []:
        lift = c.get("lift") or {}
        bayes = c.get("bayesian") or {}
        table.add_row(str(c.get("variant", "")), str(c.get("metric", "")),
                      _pct(lift.get("estimate")),
                      f"{_pct(lift.get('low'))} to {_pct(lift.get('high'))}",
                      _num(c.get("p_adjusted")), _pct(bayes.get("chance_to_win"), sign=False),
                      f"{'significant' if c.get('significant') else 'not significant'} "
                      f"({c.get('decision', '')})")
    return Group(head, table)


def _pct(value, sign: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value:+.1%}" if sign else f"{value:.1%}"


def _num(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def erasure_text(summary: dict, done: bool) -> Group:
    """What an erasure removes (``done=False``: the preview) or removed."""
    verb = "Erased" if done else "Would erase"
    head = Text()
    head.append(f"{verb} person {summary['person_id']}: records "
                f"{', '.join(summary['records'])}\n", style="bold")
    table = Table(header_style="bold", title="Rows")
    for col in ("table", "rows", "raw rows"):
        table.add_column(col)
    for source, counts in summary["source_rows"].items():
        table.add_row(f"{source} (source)", f"{counts['staged']:,}", f"{counts['raw']:,}")
    for name, rows in summary["derived_rows"].items():
        table.add_row(name, f"{rows:,}", "")
    parts: list = [head, table]
    tail = Text()
    if summary["shared_identifiers_kept"]:
        kept = ", ".join(f"{n} {k}" for k, n in summary["shared_identifiers_kept"].items())
        tail.append(f"Kept, as other people hold them too: {kept}.\n")
    for export in summary["exports_to_follow_up"]:
        tail.append(f"Sent earlier by export {export['export_id']} ({export['kind']} to "
                    f"{export['destination']}, {str(export['started_at'])[:10]}): ask that "
                    "destination to erase the person too.\n", style="yellow")
    if done:
        tail.append(f"Registered as {summary['request_id']}; later loads will not bring the "
                    "person back.\n")
    parts.append(tail)
    return Group(*parts)
