"""Pins: a person's decision that two records are (or are not) the same person.

Pins come from ``identity.yml`` (reviewed in git) and from the CLI or API (kept in the
``identity_pins`` table). Every run respects them: a merge pin is an edge that is never
cut; a split pin makes the graph step cut the weakest edges between its two records.
Adding, removing and syncing pins writes the ledger, so every decision is audited.
Pins are few and made by hand: checking them in Python is bounded.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import ibis
import pyarrow as pa
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.errors import PasserelleError
from passerelle.identity.tables import (
    CUSTOMER_RECORDS,
    IDENTITY_LEDGER,
    IDENTITY_PINS,
    LEDGER_SCHEMA,
    PERSON_MAP,
    PIN_RULE,
    PINS_SCHEMA,
    ensure_tables,
    node_of,
)
from passerelle.project.identity_models import Pin
from passerelle.runlog import utcnow

KINDS = ("merge", "split")
ORIGINS = ("yml", "cli", "api")


@dataclass(frozen=True)
class ActivePin:
    pin_id: str
    kind: str  # 'merge' | 'split'
    node_a: str  # node_a < node_b
    node_b: str
    reason: str
    author: str | None
    origin: str  # 'yml' | 'cli' | 'api'

    def describe(self) -> str:
        return f"pin {self.pin_id} ({self.kind} {self.node_a} + {self.node_b}, {self.origin})"


def _ordered(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def yml_pin_id(pin: Pin) -> str:
    """A stable id for a pin of identity.yml, so runs and the ledger can refer to it."""
    a, b = _ordered(*pin.records)
    return "pin-" + hashlib.sha256(f"{pin.kind}|{a}|{b}".encode()).hexdigest()[:12]


def from_yml(pins: Iterable[Pin]) -> list[ActivePin]:
    out = []
    for pin in pins:
        for node in pin.records:
            if ":" not in node:
                raise PasserelleError(
                    f"identity.yml: pin record '{node}' is not a '<source>:<record_id>' "
                    "reference.", "Write each pinned record as source name, colon, record id.")
        a, b = _ordered(*pin.records)
        out.append(ActivePin(yml_pin_id(pin), pin.kind, a, b, pin.reason, pin.author, "yml"))
    return out


def active_pins(engine: Engine, yml_pins: Sequence[Pin] = ()) -> list[ActivePin]:
    """The pins every run applies: those of identity.yml plus the active ones in the table.

    Pins of identity.yml are taken from the file (the table only mirrors them for the
    audit), so a pin removed from the file stops applying at once.
    """
    pins = {p.pin_id: p for p in from_yml(yml_pins)}
    if engine.exists(IDENTITY_PINS):
        t = engine.table(IDENTITY_PINS)
        rows = engine.to_arrow(
            t.filter(t.active & (t.origin != "yml")).order_by("created_at", "pin_id")
        ).to_pylist()
        for r in rows:
            pins.setdefault(r["pin_id"], ActivePin(
                r["pin_id"], r["kind"], r["node_a"], r["node_b"], r["reason"], r["author"],
                r["origin"]))
    return list(pins.values())


def check_conflicts(pins: Sequence[ActivePin]) -> None:
    """Refuse contradictory pins, naming both sides.

    A merge and a split on the same pair contradict; so does a split whose two records are
    joined by a chain of merge pins (merges are transitive).
    """
    merges = [p for p in pins if p.kind == "merge"]
    adjacency: dict[str, list[tuple[str, ActivePin]]] = defaultdict(list)
    for p in merges:
        adjacency[p.node_a].append((p.node_b, p))
        adjacency[p.node_b].append((p.node_a, p))
    for split in (p for p in pins if p.kind == "split"):
        chain = _merge_chain(adjacency, split.node_a, split.node_b)
        if chain is None:
            continue
        others = ", ".join(p.describe() for p in chain)
        raise PasserelleError(
            f"Conflicting pins: {split.describe()} contradicts {others}.",
            "Remove one of them (`passerelle identity unpin <pin_id>`, or edit the pins of "
            "identity.yml), then run again.")


def _merge_chain(adjacency: dict[str, list[tuple[str, ActivePin]]], start: str,
                 goal: str) -> list[ActivePin] | None:
    """The merge pins on a path from start to goal (BFS over the pins only), or None."""
    came: dict[str, tuple[str, ActivePin] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while came[node] is not None:
                node, pin = came[node]  # type: ignore[misc]
                path.append(pin)
            return path[::-1]
        for nxt, pin in adjacency.get(node, []):
            if nxt not in came:
                came[nxt] = (node, pin)
                queue.append(nxt)
    return None


def existing_nodes(engine: Engine, nodes: Iterable[str]) -> set[str]:
    """Which of these nodes are records of ``customer_records`` (bounded: a few nodes)."""
    wanted = sorted(set(nodes))
    if not wanted or not engine.exists(CUSTOMER_RECORDS):
        return set()
    records = engine.table(CUSTOMER_RECORDS)
    node = node_of(records)
    found = engine.to_arrow(records.filter(node.isin(wanted)).select(node=node).distinct())
    return set(found["node"].to_pylist())


def usable_pins(engine: Engine, pins: Sequence[ActivePin]) -> tuple[list[ActivePin], list[str]]:
    """Split pins into those whose two records exist and warnings for the others.

    A record can disappear (deleted upstream, erased): its pins stop applying and are
    reported, they do not fail the run.
    """
    present = existing_nodes(engine, [n for p in pins for n in (p.node_a, p.node_b)])
    usable, warnings = [], []
    for p in pins:
        missing = [n for n in (p.node_a, p.node_b) if n not in present]
        if missing:
            warnings.append(f"{p.describe()} refers to {', '.join(missing)}, which no longer "
                            "exists; the pin is not applied.")
        else:
            usable.append(p)
    return usable, warnings


def _person_of(engine: Engine, node: str) -> str | None:
    if not engine.exists(PERSON_MAP):
        return None
    pm = engine.table(PERSON_MAP)
    rows = engine.to_arrow(pm.filter(pm.node == node).select("person_id")).to_pylist()
    return rows[0]["person_id"] if rows else None


def write_ledger(engine: Engine, rows: list[dict]) -> None:
    """Append ledger rows built in Python (pins, cuts: a handful per run)."""
    if not rows:
        return
    table = pa.Table.from_pylist(
        [{c: r.get(c) for c in LEDGER_SCHEMA.names} for r in rows],
        schema=LEDGER_SCHEMA.to_pyarrow())
    engine.append_arrow(IDENTITY_LEDGER, table.to_reader())


def _pin_ledger(engine: Engine, pin: ActivePin, action: str, author: str | None,
                run_id: str | None, at: datetime) -> dict:
    return dict(run_id=run_id, at=at, action=action, node_a=pin.node_a, node_b=pin.node_b,
                person_id=_person_of(engine, pin.node_a), rule=PIN_RULE,
                evidence=json.dumps({"pin_id": pin.pin_id, "kind": pin.kind,
                                     "reason": pin.reason, "origin": pin.origin}),
                author=author)


def _insert_pin(engine: Engine, pin: ActivePin, at: datetime) -> None:
    row = dict(pin_id=pin.pin_id, kind=pin.kind, node_a=pin.node_a, node_b=pin.node_b,
               reason=pin.reason, author=pin.author, origin=pin.origin, created_at=at,
               active=True)
    engine.append_arrow(IDENTITY_PINS, pa.Table.from_pylist(
        [row], schema=PINS_SCHEMA.to_pyarrow()).to_reader())


def _deactivate(engine: Engine, pin_id: str) -> None:
    engine.execute(sge.update(
        sg.table(IDENTITY_PINS, quoted=True), {"active": sge.false()},
        where=sg.column("pin_id", quoted=True).eq(sge.convert(pin_id))))


def add_pin(engine: Engine, kind: str, node_a: str, node_b: str, reason: str,
            author: str | None, origin: str = "cli", *, yml_pins: Sequence[Pin] = ()) -> str:
    """Record a person's decision; the next run applies it. Returns the pin id.

    Both records must exist and the pin must not contradict an active pin (those of
    identity.yml included when given). Adding a pin that is already active returns its id.
    """
    if kind not in KINDS:
        raise PasserelleError(f"Unknown pin kind '{kind}'.", "Use 'merge' or 'split'.")
    if origin not in ORIGINS:
        raise PasserelleError(f"Unknown pin origin '{origin}'.", "Use 'cli', 'api' or 'yml'.")
    if node_a == node_b:
        raise PasserelleError(f"A pin needs two different records, got {node_a} twice.",
                              "Give two record references.")
    if not reason or len(reason.strip()) < 3:
        raise PasserelleError("A pin needs a reason.", "Say why, in a few words.")
    a, b = _ordered(node_a, node_b)
    missing = [n for n in (a, b) if n not in existing_nodes(engine, [a, b])]
    if missing:
        raise PasserelleError(
            f"No customer record {', '.join(missing)}.",
            "Give records as '<source>:<record_id>' (see `passerelle profile <id>`).")
    ensure_tables(engine)
    pins = active_pins(engine, yml_pins)
    for p in pins:
        if (p.kind, p.node_a, p.node_b) == (kind, a, b):
            return p.pin_id
    pin = ActivePin("pin-" + uuid.uuid4().hex[:12], kind, a, b, reason.strip(), author, origin)
    check_conflicts([*pins, pin])
    at = utcnow()
    with engine.transaction():
        _insert_pin(engine, pin, at)
        write_ledger(engine, [_pin_ledger(engine, pin, f"pin_{kind}", author, None, at)])
    return pin.pin_id


def remove_pin(engine: Engine, pin_id: str, author: str | None) -> ActivePin:
    """Deactivate a pin made by the CLI or API (kept in the table for the audit)."""
    ensure_tables(engine)
    t = engine.table(IDENTITY_PINS)
    rows = engine.to_arrow(t.filter((t.pin_id == pin_id) & t.active)).to_pylist()
    if not rows:
        raise PasserelleError(f"No active pin {pin_id}.",
                              "List the pins with `passerelle identity pins`.")
    r = rows[0]
    if r["origin"] == "yml":
        raise PasserelleError(f"Pin {pin_id} is declared in identity.yml.",
                              "Remove it from identity.yml instead.")
    pin = ActivePin(r["pin_id"], r["kind"], r["node_a"], r["node_b"], r["reason"], r["author"],
                    r["origin"])
    with engine.transaction():
        _deactivate(engine, pin_id)
        write_ledger(engine, [_pin_ledger(engine, pin, "unpin", author, None, utcnow())])
    return pin


def sync_yml_pins(engine: Engine, yml_pins: Sequence[Pin], run_id: str) -> None:
    """Mirror identity.yml's pins in ``identity_pins`` and the ledger (audit only)."""
    ensure_tables(engine)
    declared = {p.pin_id: p for p in from_yml(yml_pins)}
    t = engine.table(IDENTITY_PINS)
    stored = engine.to_arrow(t.filter((t.origin == "yml") & t.active)).to_pylist()
    stored_ids = {r["pin_id"] for r in stored}
    at = utcnow()
    for pin_id in sorted(set(declared) - stored_ids):
        pin = declared[pin_id]
        _insert_pin(engine, pin, at)
        write_ledger(engine, [_pin_ledger(engine, pin, f"pin_{pin.kind}", pin.author, run_id,
                                          at)])
    for r in stored:
        if r["pin_id"] not in declared:
            pin = ActivePin(r["pin_id"], r["kind"], r["node_a"], r["node_b"], r["reason"],
                            r["author"], "yml")
            _deactivate(engine, pin.pin_id)
            write_ledger(engine, [_pin_ledger(engine, pin, "unpin", None, run_id, at)])


def merge_pin_edges(pins: Sequence[ActivePin], run_id: str) -> ibis.Table:
    """Merge pins as graph edges (rule 'pin', weight 1000), as an in-memory table."""
    from passerelle.identity.tables import EDGE_SCHEMA, KEY_WEIGHT

    columns = [c for c in EDGE_SCHEMA.names if c != "first_seen_run"]
    rows = [dict(node_a=p.node_a, node_b=p.node_b, rule=PIN_RULE, weight=KEY_WEIGHT,
                 match_probability=1.0,
                 evidence=json.dumps({"pin_id": p.pin_id, "reason": p.reason}),
                 run_id=run_id) for p in pins if p.kind == "merge"]
    schema = ibis.schema({c: EDGE_SCHEMA[c] for c in columns})
    return ibis.memtable(pa.Table.from_pylist(rows, schema=schema.to_pyarrow()))
