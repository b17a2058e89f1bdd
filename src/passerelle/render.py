"""Rich renderings of results for the terminal (the CLI's only output code)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from passerelle.errors import Problem
from passerelle.formatting import DEFAULT, Formatter

if TYPE_CHECKING:
    from passerelle.pipeline import RunResult


class FitTable:
    """A table that fits the terminal: key columns keep their values whole on one line; the
    free-text columns share what is left and are cut with "…" (``--wide`` shows them whole).
    Sized when printed, so it fits whatever width the console has."""

    def __init__(self, headers: list[str], rows: list[list[str]], free: tuple[str, ...] = (),
                 right: tuple[str, ...] = (), title: str | None = None,
                 wide: bool = False) -> None:
        self.headers, self.rows, self.free = headers, rows, free
        self.right, self.title, self.wide = right, title, wide

    def __rich_console__(self, console, options):
        free = [h for h in self.headers if h in self.free]
        widths = {h: max([Text.from_markup(h).cell_len] + [Text.from_markup(r[i]).cell_len
                                                           for r in self.rows])
                  for i, h in enumerate(self.headers)}
        used = sum(w for h, w in widths.items() if h not in free) + 3 * len(self.headers) + 1
        share = max(12, (options.max_width - used) // max(1, len(free)))
        table = Table(title=self.title, title_justify="left", header_style="bold",
                      show_lines=self.wide and bool(free))
        for h in self.headers:
            justify = "right" if h in self.right else "left"
            if h in free:
                table.add_column(h, justify=justify, no_wrap=not self.wide,  # type: ignore[arg-type]
                                 overflow="fold" if self.wide else "ellipsis",
                                 max_width=None if self.wide else min(widths[h], share))
            else:
                table.add_column(h, justify=justify, no_wrap=True,  # type: ignore[arg-type]
                                 min_width=widths[h])
        for row in self.rows:
            table.add_row(*row)
        yield table


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


def run_summary(result: RunResult, fmt: Formatter = DEFAULT) -> Group:
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
        loaded = fmt.number(load.rows_loaded) if load else "[red]failed[/red]"
        if load and not load.rows_loaded and load.units_skipped:
            loaded = "[dim]unchanged[/dim]"
        if stage:
            sources.add_row(name, loaded, fmt.number(stage.rows_staged),
                            _warn(quarantined[name], fmt),
                            _warn(sum(stage.issues_by_field.values()), fmt, "yellow"),
                            fmt.seconds(seconds[name]))
        elif name in result.unchanged:
            sources.add_row(name, loaded, "[dim]unchanged[/dim]", _warn(quarantined[name], fmt),
                            "", fmt.seconds(seconds[name]))
        else:
            why = failed.message.splitlines()[0][:60] if failed else ""
            sources.add_row(name, loaded, f"[red]{why}[/red]", "", "", fmt.seconds(seconds[name]))
    parts: list = [sources]
    if result.quarantine:
        top = Table(title="In quarantine: top reasons", title_justify="left",
                    header_style="bold")
        top.add_column("source")
        top.add_column("reason")
        top.add_column("rows", justify="right")
        for row in result.quarantine[:5]:
            top.add_row(row["source"], row["reason"], fmt.number(row["rows"]))
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
        steps.add_row(name, fmt.seconds(secs))
    parts.append(steps)
    return Group(*parts)


def _warn(n: int, fmt: Formatter, color: str = "red") -> str:
    return f"[{color}]{fmt.number(n)}[/{color}]" if n else "0"


def runs_table(rows: list[dict], fmt: Formatter = DEFAULT, wide: bool = False) -> Group:
    """One table a run (its id and start in the title), a line a step; the message is cut
    to the terminal's width unless ``wide``."""
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    tables = []
    for run_id, steps in by_run.items():
        started = min(r["started_at"] for r in steps)
        lines = []
        for r in steps:
            secs = (r["finished_at"] - r["started_at"]).total_seconds()
            status = {"ok": "[green]ok[/green]", "failed": "[red]failed[/red]"}.get(
                r["status"], f"[yellow]{r['status']}[/yellow]")
            lines.append([r["step"], r["target"] or "", fmt.seconds(secs),
                          _n(r["rows_in"], fmt), _n(r["rows_out"], fmt), status,
                          Text(r["message"] or "").markup])
        headers = ["step", "target", "time", "rows in", "rows out", "status", "message"]
        if not wide:  # what fits 80 columns beside a message; --wide and --json have all
            headers.remove("rows in")
            lines = [line[:3] + line[4:] for line in lines]
        tables.append(FitTable(headers, lines, free=("message",), wide=wide,
                               right=("time", "rows in", "rows out"),
                               title=f"Run {run_id} · {fmt.timestamp(started)}"))
    return Group(*tables)


def _n(v: int | None, fmt: Formatter) -> str:
    return "" if v is None else fmt.number(v)


def print_error(console: Console, reason: str, instruction: str | None) -> None:
    console.print(f"[bold red]Error:[/bold red] {reason}", highlight=False)
    if instruction:
        console.print(f"[dim]→ {instruction}[/dim]", highlight=False)


def identity_diff_text(diff: dict, fmt: Formatter = DEFAULT) -> Group:
    """What a candidate identity.yml would change, with examples."""
    head = Text()
    head.append(f"Persons now: {fmt.number(diff['persons_now'])}  →  with the candidate rules: "
                f"{fmt.number(diff['persons_after'])}\n", style="bold")
    m, s = diff["merges"], diff["splits"]
    head.append(f"Would merge: {fmt.count(m['groups'], 'group')} of "
                f"{fmt.count(m['persons'], 'current person', 'current persons')} "
                f"({fmt.count(m['records'], 'record')})\n")
    head.append(f"Would split: {fmt.count(s['groups'], 'person')} into "
                f"{fmt.count(s['persons'], 'part')} ({fmt.count(s['records'], 'record')})\n")
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


def arrow_table(table, fmt: Formatter = DEFAULT, columns: list[str] | None = None,
                money: tuple[str, ...] = (), percent: tuple[str, ...] = ()) -> FitTable:
    """A pyarrow table; only ``columns`` (all by default). Columns named in ``money`` are
    amounts in the project's currency, those in ``percent`` shares."""
    names = [c for c in (columns or table.column_names) if c in table.column_names]
    numeric = {n for n in names if _numeric(table.schema.field(n).type)}
    return typed_table(table.select(names).to_pylist(), table.column_names, numeric, fmt,
                       columns, money, percent)


def typed_table(rows: list[dict], names: Sequence[str], numeric: Collection[str],
                fmt: Formatter = DEFAULT, columns: Sequence[str] | None = None,
                money: tuple[str, ...] = (), percent: tuple[str, ...] = ()) -> FitTable:
    """Rows whose columns are ``names`` (those in ``numeric`` right-aligned), as
    :func:`arrow_table` shows a table of them; only ``columns`` (all by default)."""
    shown = [c for c in (columns or names) if c in names]
    headers = [n.replace("_", " ") for n in shown]
    right = tuple(h for h, n in zip(headers, shown, strict=True) if n in numeric)
    cells = [[Text(fmt.money(v) if k in money and v is not None else
                   fmt.percent(v) if k in percent and v is not None else fmt.value(v)).markup
              for k, v in ((k, row[k]) for k in shown)] for row in rows]
    return FitTable(headers, cells, right=right)


def _numeric(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or \
        pa.types.is_decimal(arrow_type)


def glossary_table(entries: list[dict], wide: bool = False) -> FitTable:
    """One line an entry: name, kind, definition (cut to the width), owner; ``wide`` adds
    status, lineage and use, in full."""
    headers = ["name", "kind", "definition", "owner"]
    if wide:
        headers += ["status", "lineage", "used by"]
    rows = []
    for e in entries:
        row = [e["name"], e["kind"], e.get("definition") or e.get("description") or "",
               e.get("owner") or ""]
        if wide:
            row += [e.get("status") or "", "\n".join(e.get("lineage") or []),
                    ", ".join(e.get("used_by") or [])]
        rows.append([Text(c).markup for c in row])
    return FitTable(headers, rows, free=("definition", "lineage", "used by"), wide=wide)


def rows_table(rows: list[dict], columns: tuple[str, ...], fmt: Formatter = DEFAULT,
               free_text: tuple[str, ...] = (), wide: bool = False,
               more: tuple[str, ...] = ()) -> FitTable | str:
    """A table of ``columns`` (and ``more`` with ``wide``) from dict rows, or a sentence when
    there is none. Every column keeps its values whole on one line, except the ``free_text``
    ones, cut to what is left of the terminal's width (whole with ``wide``)."""
    if not rows:
        return "Nothing yet."
    if wide:
        columns = (*columns, *more)
    headers = [c.replace("_", " ") for c in columns]
    right = tuple(h for h, c in zip(headers, columns, strict=True) if any(
        isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in rows))
    return FitTable(headers, [[Text(fmt.value(r.get(c))).markup for c in columns] for r in rows],
                    free=tuple(c.replace("_", " ") for c in free_text), right=right, wide=wide)


def record_text(record: dict, fmt: Formatter = DEFAULT, title: str | None = None) -> Text:
    """One record as ``key: value`` lines (nested mappings indented), for one-result commands."""
    text = Text()
    if title:
        text.append(f"{title}\n", style="bold")
    width = max((len(k) for k in record), default=0)

    def add(key: str, value: object, indent: str, pad: int) -> None:
        label = f"{indent}{key.replace('_', ' ')}:".ljust(pad + len(indent) + 2)
        if isinstance(value, dict):
            text.append(f"{indent}{key.replace('_', ' ')}:\n", style="cyan")
            inner = max((len(str(k)) for k in value), default=0)
            for k, v in value.items():
                add(str(k), v, indent + "  ", inner)
            return
        if isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
            text.append(f"{indent}{key.replace('_', ' ')}:\n", style="cyan")
            for number, item in enumerate(value, 1):  # a list of records: one block each
                add(str(number), item, indent + "  ", len(str(len(value))))
            return
        text.append(label, style="cyan")
        text.append(f"{fmt.value(value) if value not in ({}, []) else '—'}\n")

    for key, value in record.items():
        add(key, value, "", width)
    return text


def experiment_text(analysis: dict, fmt: Formatter = DEFAULT) -> Group:
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
                      fmt.percent(lift.get("estimate"), sign=True),
                      f"{fmt.percent(lift.get('low'), sign=True)} to "
                      f"{fmt.percent(lift.get('high'), sign=True)}",
                      fmt.number(c.get("p_adjusted"), 3), fmt.percent(bayes.get("chance_to_win")),
                      f"{'significant' if c.get('significant') else 'not significant'} "
                      f"({c.get('decision', '')})")
    return Group(head, table)


def erasure_text(summary: dict, done: bool, fmt: Formatter = DEFAULT) -> Group:
    """What an erasure removes (``done=False``: the preview) or removed."""
    verb = "Erased" if done else "Would erase"
    head = Text()
    head.append(f"{verb} person {summary['person_id']}: records "
                f"{', '.join(summary['records'])}\n", style="bold")
    table = Table(header_style="bold", title="Rows")
    for col in ("table", "rows", "raw rows"):
        table.add_column(col)
    for source, counts in summary["source_rows"].items():
        table.add_row(f"{source} (source)", fmt.number(counts["staged"]), fmt.number(counts["raw"]))
    for name, rows in summary["derived_rows"].items():
        table.add_row(name, fmt.number(rows), "")
    parts: list = [head, table]
    tail = Text()
    if summary["shared_identifiers_kept"]:
        kept = ", ".join(f"{n} {k}" for k, n in summary["shared_identifiers_kept"].items())
        tail.append(f"Kept, as other people hold them too: {kept}.\n")
    for export in summary["exports_to_follow_up"]:
        tail.append(f"Sent earlier by export {export['export_id']} ({export['kind']} to "
                    f"{export['destination']}, {fmt.date(export['started_at'])}): ask that "
                    "destination to erase the person too.\n", style="yellow")
    if done:
        tail.append(f"Registered as {summary['request_id']}; later loads will not bring the "
                    "person back.\n")
    parts.append(tail)
    return Group(*parts)
