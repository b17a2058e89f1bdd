"""One decision: the ranked, rendered messages of a placement for one person, now.

Order of the checks, and why:

1. the context is typed against the placement (a wrong value is an error naming it);
2. the person is found from any identifier; unknown, they get the default experience;
3. a stable holdout per placement (hash of placement salt and person) gets the default
   experience, so the uplift of personalisation can be measured;
4. the placement's offers, best first, are kept when the person is eligible (segment or
   condition, and consent, from the store), the channel fits and every context rule holds;
5. each is rendered (a failure or an empty output is reported and the next one tried),
   then its caps and budget are taken atomically (rendering first: a message that cannot
   be shown never uses a cap);
6. with nothing left, the default experience.

Every message carries the probability with which it was chosen: 1.0 for these rules. A
placement with ``ranking: learned`` orders the offers of step 4 by a Thompson draw instead
of their priority (:mod:`.bandit`); its messages carry the probability of the draw, and the
decision its learning cell, its eligible offers (by priority) and whether it explored:
what the decision log needs (:mod:`.log`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from passerelle.measure.design import assign
from passerelle.personalize import bandit
from passerelle.personalize import caps as _caps
from passerelle.personalize.context import PersonalizeError, decision_context, rules_hold
from passerelle.personalize.store import DecisionStore, PersonRecord, StoreUnavailable
from passerelle.personalize.templates import RenderError
from passerelle.project.offers_models import OfferConfig, OfferDefinitions, PlacementConfig

HOLDOUT, TREATED = "holdout", "treated"


@dataclass
class Message:
    offer: str | None  # None: the placement's default experience
    content: dict[str, str]
    reason: dict[str, Any]
    rank: int
    probability: float = 1.0


@dataclass
class Decision:
    decision_id: str
    placement: str
    person_id: str | None  # None: nobody known by the identifier given
    group: str  # treated or holdout
    default: bool  # the default experience was returned
    messages: list[Message]
    decided_at: datetime
    failures: list[str] = field(default_factory=list)  # templates that failed, caps down
    context: dict[str, Any] = field(default_factory=dict)
    ranking: str = "rules"  # rules or learned
    cell: str | None = None  # learned: where the bandit learns (segment, context value, all)
    candidates: list[str] = field(default_factory=list)  # eligible offers, by priority
    explored: bool | None = None  # learned: the first message was not the best posterior mean

    def as_dict(self) -> dict[str, Any]:
        """The decision as plain data (what ``dataclasses.asdict`` gives, without its deep
        copy of every value: this runs on every request)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        out["messages"] = [dict(vars(m)) for m in self.messages]
        out["failures"], out["context"] = list(self.failures), dict(self.context)
        out["candidates"] = list(self.candidates)
        out["decided_at"] = self.decided_at.isoformat()
        return out


_FIELDS = tuple(f.name for f in fields(Decision))


def holdout_salt(placement: PlacementConfig) -> str:
    # prefixed so that a placement and an audience of the same name draw apart
    return f"placement:{placement.holdout_salt}"


def group_of(person_key: str, placement: PlacementConfig) -> str:
    pct = placement.holdout_percent
    if pct <= 0:
        return TREATED
    return assign(person_key, holdout_salt(placement), {HOLDOUT: pct, TREATED: 100 - pct})


def eligibility_reason(offer: OfferConfig) -> str:
    if offer.eligibility is None:
        return "everyone"
    if offer.eligibility.segment is not None:
        return f"segment {offer.eligibility.segment}"
    return "condition in the offer"


def _reason(offer: OfferConfig) -> dict[str, Any]:
    rules = [f"{r.context} {r.op}" + ("" if r.value is None else f" {r.value}")
             for r in offer.context]
    return {"rule": "priority", "priority": offer.priority,
            "eligibility": eligibility_reason(offer), "consent": offer.consent,
            "context_rules": rules}


def _learned_reason(offer: OfferConfig, ranking: bandit.Ranking) -> dict[str, Any]:
    mean = float(ranking.means[[o.name for o in ranking.offers].index(offer.name)])
    return {**_reason(offer), "rule": "learned", "cell": ranking.cell,
            "posterior_mean": round(mean, 4)}


def placement_of(defs: OfferDefinitions, name: str) -> PlacementConfig:
    placement = defs.placements.get(name)
    if placement is None:
        known = ", ".join(sorted(defs.placements)) or "none"
        raise PersonalizeError(f"There is no placement named '{name}'.",
                               f"Placements: {known} (placements/*.yml).")
    return placement


def candidates(store: DecisionStore, placement: PlacementConfig, person: PersonRecord,
               values: Mapping[str, Any]) -> list[OfferConfig]:
    """The placement's offers this person may get in this context, best first."""
    channel = values.get("channel")
    return [o for o in store.definitions.offers_of(placement.name)
            if o.name in person.offers
            and (not o.channels or channel is None or channel in o.channels)
            and rules_hold(o.context, values)]


def _default(store: DecisionStore, placement: PlacementConfig, values: dict[str, Any],
             why: str, failures: list[str]) -> list[Message]:
    try:
        content = store.renderer.render(placement.default.content, values)
    except RenderError as exc:
        # the default has no person values: it fails the same for everyone, so say so
        failures.append(f"default of {placement.name}: {exc.reason}")
        return []
    return [Message(None, content, {"rule": "default", "why": why}, 1)]


def decide(store: DecisionStore, person: str | None, placement: str,
           context: Mapping[str, Any] | None = None, *,
           now: datetime | None = None) -> Decision:
    """Decide the messages of ``placement`` for the person known by ``person`` (any id).

    Raises :class:`ContextError` (its ``field`` names the value) for a bad context and
    :class:`PersonalizeError` for an unknown placement; everything else is an answer.
    """
    now = now or datetime.now(UTC)
    place = placement_of(store.definitions, placement)
    values = decision_context(place, context or {}, now, store.timezone)
    failures: list[str] = []
    record: PersonRecord | None = None
    if person:
        try:
            record = store.people.lookup(person)
            store.problems.pop("people", None)
        except StoreUnavailable as exc:
            store.problems["people"] = str(exc)
            failures.append(f"the decision store did not answer: {exc}")
    key = record.person_id if record else (person or "")
    group = group_of(key, place)
    decision = Decision(str(uuid.uuid4()), place.name, record.person_id if record else None,
                        group, True, [], now, failures, values)
    if record is None:
        why = "unknown person" if not failures else "store unavailable"
        decision.messages = _default(store, place, values, why, failures)
        return decision
    if group == HOLDOUT:
        decision.messages = _default(store, place, values, "holdout", failures)
        return decision
    chosen: list[Message] = []
    person_values = {**record.values, **values}
    offers = candidates(store, place, record, values)
    decision.candidates = [o.name for o in offers]
    ranking = None
    if place.ranking == "learned":
        decision.ranking = "learned"
        decision.cell = bandit.cell_of(place, record.values, values)
        ranking = bandit.rank(place, offers, store.posteriors, decision.cell,
                              decision.decision_id, store.draws)
        offers = ranking.ordered()
    # every candidate rendered first (a message that cannot be shown never uses a cap),
    # then the caps of those that rendered taken in turn, in one call to the store
    rendered: list[tuple[int, OfferConfig, dict[str, str] | None, str | None]] = []
    for i, offer in enumerate(offers):
        allowed = {k: person_values.get(k) for k in (*offer.fields, *offer.traits, *values)}
        try:
            rendered.append((i, offer, store.renderer.render(offer.content, allowed), None))
        except RenderError as exc:
            rendered.append((i, offer, None, exc.reason))
    ready = [(i, offer, content) for i, offer, content, error in rendered if error is None]
    taken = iter(_take(store, [offer for _, offer, _ in ready], place, record.person_id,
                       now, place.max_messages, failures))
    for i, offer, content, error in rendered:
        if len(chosen) >= place.max_messages:
            break
        if error is not None:
            failures.append(f"offer {offer.name}: {error}")
            continue
        if not next(taken):
            continue
        assert content is not None
        if ranking is None:
            chosen.append(Message(offer.name, content, _reason(offer), len(chosen) + 1))
            continue
        # the offers before this one were chosen or skipped: it won among those left
        probability = ranking.probability(offer, offers[i:])
        if not chosen:
            decision.explored = ranking.explored(offer)
        chosen.append(Message(offer.name, content, _learned_reason(offer, ranking),
                              len(chosen) + 1, probability))
    if chosen:
        decision.messages, decision.default = chosen, False
    else:
        decision.messages = _default(store, place, values, "no eligible offer", failures)
    return decision


def _take(store: DecisionStore, offers: list[OfferConfig], place: PlacementConfig,
          person_id: str, now: datetime, wanted: int, failures: list[str]) -> list[bool | None]:
    """The caps and budgets of ``offers`` taken in turn until ``wanted`` messages passed:
    per offer True, False (a cap reached, or caps that cannot be counted: fail closed) or
    None (not tried)."""
    groups = [_caps.counters(offer, place, person_id, now) for offer in offers]
    if not any(groups):  # nothing capped: no round trip
        return [True if n < wanted else None for n in range(len(offers))]
    try:
        flags = store.caps.take_first(groups, wanted)
    except StoreUnavailable as exc:
        store.problems["caps"] = str(exc)
        flags, passed = [], 0
        for offer, counters in zip(offers, groups, strict=True):
            if passed >= wanted:
                flags.append(None)
            elif counters:  # a cap that cannot be counted is a cap reached
                failures.append(f"offer {offer.name}: caps cannot be counted ({exc}); "
                                "not shown")
                flags.append(False)
            else:
                passed += 1
                flags.append(True)
        return flags
    store.problems.pop("caps", None)
    return flags
