"""Terminal renderings of the 360° view and of the identity report (Rich).

They take the plain dicts of :func:`passerelle.identity.view.person_view` and
:func:`passerelle.identity.report.identity_report`, never the warehouse, so what the terminal
shows is exactly what the API returns.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from passerelle.formatting import DEFAULT, Formatter

NAME_FIELDS = ("first_name", "last_name")


def _table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold", expand=False)
    for c in columns:
        table.add_column(c, justify="right" if c in right else "left")
    return table


def _s(fmt: Formatter, value: Any) -> str:
    return "[dim]—[/dim]" if value is None else fmt.value(value)


def _day(fmt: Formatter, value: Any) -> str:
    """A time of the view (ISO text, naive UTC) in the project's zone, to the minute."""
    return "[dim]—[/dim]" if value is None else fmt.timestamp(value, seconds=False)


def evidence_text(rule: str, evidence: Any) -> str:
    """One line saying why an edge exists: the shared key, or the Splink weights."""
    if isinstance(evidence, dict) and "field" in evidence:
        rest = ", ".join(f"{k}={v}" for k, v in evidence.items() if k != "field")
        return f"same {evidence['field']}" + (f" ({rest})" if rest else "")
    if isinstance(evidence, dict):
        parts = []
        for name, detail in evidence.items():
            if isinstance(detail, dict):
                weight = detail.get("weight")
                level = detail.get("level", "")
                sign = f" ({weight:+.1f})" if isinstance(weight, int | float) else ""
                parts.append(f"{name}: {level}{sign}")
            else:
                parts.append(f"{name}: {detail}")
        return "; ".join(parts)
    return "" if evidence is None else str(evidence)


def render_person(view: dict[str, Any], fmt: Formatter = DEFAULT) -> RenderableType:
    """The 360° view for ``passerelle profile``."""
    s, golden = view["summary"], view["golden"]
    name = " ".join(str(golden[f]["value"]) for f in NAME_FIELDS if golden[f]["value"])
    head = Text()
    head.append(f"{view['person_id']}", style="bold cyan")
    head.append(f"  {name}\n" if name else "\n", style="bold")
    head.append(f"{fmt.count(s['record_count'], 'record')} from {', '.join(s['sources'])} · "
                f"first seen "
                f"{_day(fmt, s['first_seen_at'])} · updated {_day(fmt, s['last_updated_at'])}\n")
    head.append(f"{fmt.count(s['orders'], 'order')} ({fmt.money(s['revenue'])}) · "
                f"{fmt.count(s['events'], 'event')}")
    if view.get("masked"):
        head.append("  · personal data masked", style="yellow")
    parts: list[RenderableType] = [Panel(head, title="Person", title_align="left")]

    gold = _table("Golden record", "field", "value", "from source")
    for field, entry in golden.items():
        if field.startswith("consent_"):
            continue
        gold.add_row(field, _s(fmt, entry["value"]), _s(fmt, entry["source"]))
    parts.append(gold if s.get("profile_built") else Text(
        "No golden record yet: run `passerelle run` to build profiles.", style="yellow"))

    recs = _table("Linked records", "record", "e-mail", "phone", "name", "postcode", "card",
                  "updated", "loaded from")
    for r in view["records"]:
        f, lin = r["fields"], r["lineage"]
        who = " ".join(str(f[k]) for k in NAME_FIELDS if f.get(k))
        origin = f"{lin.get('_source_file') or '?'}:{lin.get('_source_row') or '?'}"
        recs.add_row(r["node"], _s(fmt, f.get("email")), _s(fmt, f.get("phone")),
                     _s(fmt, who or None),
                     _s(fmt, f.get("postcode")), _s(fmt, f.get("loyalty_card")),
                     _day(fmt, f.get("updated_at")), origin)
    parts.append(recs)

    orders = view["orders"]
    if orders["recent"]:
        o = _table(f"Orders (latest {len(orders['recent'])} of {orders['total']}, "
                   f"total {fmt.money(orders['amount'])})", "date", "source", "order", "amount",
                   "channel", "linked by", right=("amount",))
        for r in orders["recent"]:
            o.add_row(_day(fmt, r.get("ordered_at")), r.get("_source", ""),
                      _s(fmt, r.get("order_id")),
                      _s(fmt, r.get("amount")), _s(fmt, r.get("channel")), r["matched_by"])
        parts.append(o)
    events = view["events"]
    if events["recent"]:
        e = _table(f"Recent events ({len(events['recent'])} of {events['total']})", "time",
                   "source", "type", "event", "linked by")
        for r in events["recent"]:
            e.add_row(_day(fmt, r.get("timestamp")), r.get("_source", ""), _s(fmt, r.get("type")),
                      _s(fmt, r.get("event")), r["matched_by"])
        parts.append(e)

    consents = view["consents"]
    c = _table("Consents (the latest choice wins)", "record", "e-mail", "sms", "expressed")
    g = consents["golden"]
    c.add_row(Text("golden", style="bold"),
              f"{_s(fmt, g['consent_email']['value'])} ({_s(fmt, g['consent_email']['source'])})",
              f"{_s(fmt, g['consent_sms']['value'])} ({_s(fmt, g['consent_sms']['source'])})",
              " / ".join(dict.fromkeys(_day(fmt, g[f].get("updated_at"))
                                       for f in ("consent_email", "consent_sms")
                                       if g[f].get("updated_at"))) or _s(fmt, None))
    for r in consents["by_record"]:
        c.add_row(r["node"], _s(fmt, r["consent_email"]), _s(fmt, r["consent_sms"]),
                  _day(fmt, r["consent_updated_at"]))
    parts.append(c)
    if consents.get("purposes"):
        pc = _table("Consent by purpose (the latest statement wins; a withdrawal wins ties)",
                    "purpose", "granted", "stated", "proof", "statements")
        for r in consents["purposes"]:
            proof = f"{r['source']} {r['origin']} {r['detail']}: {r['record']}"
            pc.add_row(_s(fmt, r["purpose"]), _s(fmt, r["granted"]), _day(fmt, r["stated_at"]),
                       proof, _s(fmt, r["statements"]))
        parts.append(pc)

    if view.get("traits"):
        t = _table("Traits", "trait", "value")
        for r in view["traits"]:
            t.add_row(_s(fmt, r.get("trait")), _s(fmt, r.get("value")))
        parts.append(t)
    parts.append(_why(view["why"], fmt))
    return Group(*parts)


def _why(why: dict[str, Any], fmt: Formatter) -> RenderableType:
    edges, pins = why["edges"], why["pins"]
    if not edges and not pins:
        return Panel("A single record: nothing to link.", title="Why these records are one "
                     "person", title_align="left")
    w = _table("", "records", "rule", "evidence", "probability", "since run")
    for r in edges:
        prob = r.get("match_probability")
        w.add_row(f"{r['node_a']}\n{r['node_b']}", r["rule"],
                  evidence_text(r["rule"], r.get("evidence")),
                  f"{prob:.4f}" if isinstance(prob, float) else _s(fmt, prob),
                  _s(fmt, r.get("first_seen_run")))
    body: list[RenderableType] = [w]
    for p in pins:
        state = "" if p.get("active", True) else " (inactive)"
        body.append(Text(f"pin {p.get('kind')}{state}: {p['node_a']} · {p['node_b']}: "
                         f"{p.get('reason') or ''} ({p.get('author') or p.get('origin')})"))
    return Panel(Group(*body), title="Why these records are one person", title_align="left")


def render_report(report: dict[str, Any], fmt: Formatter = DEFAULT) -> RenderableType:
    """The identity quality report for ``passerelle identity report``."""
    head = Text(f"{fmt.count(report['profiles'], 'profile')} from "
                f"{fmt.count(report['records'], 'record')} · "
                f"{fmt.count(report['single_record_persons'], 'single-record person')}, "
                f"{fmt.number(report['single_record_persons_without_key'])} of them without "
                "any key")
    parts: list[RenderableType] = [Panel(head, title="Identity", title_align="left")]
    hist = _table("Records per profile", "records", "profiles", "records in them",
                  right=("profiles", "records in them"))
    for b in report["records_per_profile"]:
        hist.add_row(b["bucket"], f"{fmt.number(b['profiles'])}", f"{fmt.number(b['records'])}")
    parts.append(hist)
    big = _table("Biggest clusters", "person", "records", "sources", right=("records",))
    for c in report["biggest_clusters"]:
        big.add_row(c["person_id"], str(c["records"]),
                    ", ".join(f"{k} {v}" for k, v in c["sources"].items()))
    parts.append(big)
    rules = _table("Links by rule", "rule", "edges", right=("edges",))
    for rule, n in report["edges_by_rule"].items():
        rules.add_row(rule, f"{fmt.number(n)}")
    parts.append(rules)
    shared = report["shared_keys"]
    if shared["total"]:
        sk = _table(f"Keys refused as shared ({fmt.number(shared['total'])})", "field", "value",
                    "distinct names", "records", right=("distinct names", "records"))
        for k in shared["top"]:
            sk.add_row(k["field"], k["value"], str(k["distinct_names"]), str(k["records"]))
        parts.append(sk)
    truth = report.get("truth")
    if truth:
        parts.append(_truth(truth, fmt))
    return Group(*parts)


def _truth(truth: dict[str, Any], fmt: Formatter) -> RenderableType:
    t = _table("Pairwise scores against the ground truth", "sources", "predicted pairs",
               "true pairs", "correct", "precision", "recall", "F1",
               right=("predicted pairs", "true pairs", "correct", "precision", "recall", "F1"))
    for row in [{"sources": "all", **truth["overall"]}, *truth["by_source_pair"]]:
        t.add_row(row["sources"], fmt.number(row["predicted_pairs"]),
                  fmt.number(row["true_pairs"]), fmt.number(row["true_positive_pairs"]),
                  fmt.number(row["precision"], 4), fmt.number(row["recall"], 4),
                  fmt.number(row["f1"], 4))
    missing = truth["not_in_person_map"]
    notes = [f"{fmt.count(truth['evaluated_records'], 'record')} scored of "
             f"{fmt.count(truth['rows'], 'truth row')} ({truth['file']})."]
    if missing["total"]:
        detail = ", ".join(f"{s} {fmt.number(n)}" for s, n in missing["by_source"].items())
        notes.append(f"{fmt.number(missing['total'])} truth rows are not in person_map: {detail}.")
    if truth["records_without_truth"]:
        notes.append(f"{fmt.number(truth['records_without_truth'])} records have no truth row.")
    notes.append(truth["note"])
    return Group(t, Text("\n".join(notes), style="dim"))
