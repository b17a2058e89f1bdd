"""Checks of placements and offers that need the rest of the project, with file and line:
segments and traits exist, fields are golden-record fields, rule values fit the context
types, and templates use only the values they are given (see :mod:`.templates`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from passerelle.errors import Problems
from passerelle.personalize.context import fits
from passerelle.personalize.templates import check_template
from passerelle.project.offers_models import (
    ContextField,
    LearnPerContext,
    OfferConfig,
    OfferDefinitions,
    PlacementConfig,
    read_offer_files,
)
from passerelle.project.segments_models import SegmentConfig
from passerelle.project.yamlio import YamlDoc
from passerelle.segments.kinds import PROFILE_KINDS, close_names


def project_context(root: Path) -> tuple[dict[str, SegmentConfig], dict[str, str] | None]:
    """The project's segments and trait kinds (their own problems are reported by
    `passerelle validate` with their files; here they only resolve references)."""
    from passerelle.segments import read_segments, trait_kinds
    from passerelle.traits.files import load_traits

    quiet = Problems()
    traits = load_traits(root, quiet)
    kinds = trait_kinds(traits) if traits.traits else None
    return read_segments(root, quiet, kinds).segments, kinds


def template_names(offer: OfferConfig, contexts: list[Mapping[str, ContextField]]) -> set[str]:
    """Names an offer's templates may use: its fields and traits, and the context values
    every one of its placements has."""
    shared = set.intersection(*(set(c) for c in contexts)) if contexts else set()
    return {*offer.fields, *offer.traits, *shared}


def check_offers(root: Path, defs: OfferDefinitions, docs: Mapping[tuple[str, str], YamlDoc],
                 problems: Problems) -> None:
    """Add every problem to ``problems``; offers and placements with an error are removed
    from ``defs`` (a decision never uses half a definition)."""
    from passerelle.identity.golden import GOLDEN_FIELDS
    from passerelle.project.consent_models import declared_purposes
    from passerelle.segments.validate import check_segment

    segments, kinds = project_context(root)
    purposes = declared_purposes(root) | {"email", "sms", "ads", "none"}
    bad: set[tuple[str, str]] = set()

    def add(key: tuple[str, str], loc: tuple[Any, ...], message: str,
            hint: str | None = None, line: int | None = None) -> None:
        doc = docs[key]
        problems.add(doc.file, message, line or doc.line_of(loc), hint)
        bad.add(key)

    def templates(key: tuple[str, str], content: Mapping[str, str], names: set[str],
                  prefix: tuple[str, ...]) -> None:
        doc = docs[key]
        for name, source in content.items():
            at = doc.line_of((*prefix, name)) or 1
            for p in check_template(source, names):
                # a multi-line template is a YAML block: its first line follows the key
                line = at + p.line if "\n" in source.rstrip("\n") else at
                add(key, (), f"template '{name}': {p.message}", line=line)

    for name, placement in defs.placements.items():
        templates(("placement", name), placement.default.content,
                  set(placement.context_fields()), ("default", "content"))
        _check_learning(("placement", name), placement, segments, add)

    for name, offer in defs.offers.items():
        key = ("offer", name)
        contexts = []
        for i, pname in enumerate(offer.placements):
            placement = defs.placements.get(pname)
            if placement is None:
                add(key, ("placements", i), f"unknown placement '{pname}'",
                    close_names(pname, defs.placements)
                    or "declare it in placements/<name>.yml")
                continue
            contexts.append(placement.context_fields())
            if offer.channels and placement.channels and not set(offer.channels) & set(
                    placement.channels):
                add(key, ("channels",), f"none of the channels {offer.channels} is a "
                    f"channel of placement '{pname}' ({placement.channels})")
        if offer.consent not in purposes:
            add(key, ("consent",), f"unknown purpose '{offer.consent}'",
                close_names(offer.consent, purposes) or "declare it in consent.yml")
        for i, field in enumerate(offer.fields):
            if field not in GOLDEN_FIELDS:
                add(key, ("fields", i), f"'{field}' is not a field of the golden record",
                    close_names(field, GOLDEN_FIELDS))
        for i, trait in enumerate(offer.traits):
            if kinds is None or trait not in kinds:
                add(key, ("traits", i), f"'{trait}' is not a trait of this project",
                    close_names(trait, kinds or {}) or "declare it in traits/*.yml")
        if offer.eligibility is not None:
            _check_eligibility(offer, key, segments, kinds, add, check_segment)
        for i, rule in enumerate(offer.context):
            for fields in contexts:
                declared = fields.get(rule.context)
                if declared is None:
                    add(key, ("context", i, "context"), f"'{rule.context}' is not a context "
                        "value of every placement of the offer",
                        close_names(rule.context, fields)
                        or "declare it under the placement's context:")
                    break
                values = rule.value if isinstance(rule.value, list) else [rule.value]
                wrong = [v for v in values if v is not None and not fits(v, declared)]
                if wrong:
                    add(key, ("context", i, "value"), f"{wrong[0]!r} is not a valid value of "
                        f"'{rule.context}' ({declared.type}"
                        + (f", one of {declared.values}" if declared.values else "") + ")")
                    break
        templates(key, offer.content, template_names(offer, contexts), ("content",))

    for kind, name in bad:
        (defs.placements if kind == "placement" else defs.offers).pop(name, None)


def _check_learning(key: tuple[str, str], placement: PlacementConfig,
                    segments: Mapping[str, SegmentConfig], add: Any) -> None:
    per = placement.learn_per
    if isinstance(per, LearnPerContext):
        fields = placement.context_fields()
        if per.context not in fields or per.context == "placement":
            add(key, ("learn_per", "context"), f"'{per.context}' is not a context value of "
                "this placement", close_names(per.context, fields)
                or "declare it under the placement's context:")
    elif per is not None:
        for i, seg in enumerate(per):
            if seg not in segments:
                add(key, ("learn_per", i), f"unknown segment '{seg}'",
                    close_names(seg, segments) or "segments are in segments/*.yml")


def _check_eligibility(offer: OfferConfig, key: tuple[str, str],
                       segments: Mapping[str, SegmentConfig], kinds: Mapping[str, str] | None,
                       add: Any, check_segment: Any) -> None:
    elig = offer.eligibility
    assert elig is not None
    if elig.segment is not None:
        if elig.segment not in segments:
            add(key, ("eligibility", "segment"), f"unknown segment '{elig.segment}'",
                close_names(elig.segment, segments) or "segments are in segments/*.yml")
        return
    inline = inline_segment(offer)
    for loc, message, hint in check_segment(inline, PROFILE_KINDS, kinds, set(segments)):
        add(key, ("eligibility", *loc), message, hint)


def inline_segment(offer: OfferConfig) -> SegmentConfig:
    """An offer's inline ``where`` as a segment the compiler takes (never saved)."""
    assert offer.eligibility is not None and offer.eligibility.where is not None
    return SegmentConfig.model_construct(
        name=f"offer__{offer.name}", description="", owner="", where=offer.eligibility.where,
        refresh_every="1d", audiences=[])


def load_offers(root: Path | str) -> tuple[OfferDefinitions, Problems]:
    """Read ``placements/*.yml`` and ``offers/*.yml`` and check them against the project's
    segments and traits. Returns the definitions that parsed and every problem found (with
    file and line); an offer with an error is left out of the definitions."""
    root = Path(root).resolve()
    problems = Problems()
    defs, docs = read_offer_files(root, problems)
    check_offers(root, defs, docs, problems)
    return defs, problems
