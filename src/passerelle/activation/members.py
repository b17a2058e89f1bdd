"""Who an activation sends: the treated members of an audience's last build who grant the
export's purpose now, with the profile fields and traits a destination asks for.

The holdout and the people without consent are filtered out here, once, so no destination
can send them by mistake. The purpose of an export is its destination's ``purpose:``, else
the audience's; consent is checked again at export time (a withdrawal since the build
counts), and the people left out are counted for the export's result. Everything is one
Ibis expression run by the warehouse; nothing is fetched row by row.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.consent.grants import granted
from passerelle.engines.base import Engine
from passerelle.project.consent_models import audience_purpose
from passerelle.project.destinations_models import DestinationError
from passerelle.segments.audience import AUDIENCE_MEMBERS, TREATED, last_build

PROFILES = "profiles"
TRAITS = "traits"
BASE_COLUMNS = ("person_id", "email", "phone", "first_name", "last_name")


def sendable_build(engine: Engine, audience: str, *, allow_empty: bool = False) -> dict:
    """The audience's last build (``audience_builds`` row), checked before anything is sent.

    An audience whose last build has nobody to send is refused unless ``allow_empty``: it
    is almost always a broken segment or consent import, and a webhook or table sync of it
    would remove everyone the destination holds.
    """
    build = last_build(engine, audience)
    if build is None:
        raise DestinationError(f"The audience '{audience}' was never built, or its name is "
                               "wrong.",
                               "Check the name with `passerelle audience status`, then run "
                               "`passerelle run` (or `passerelle audience build NAME`).")
    if not build["treated"] and not allow_empty:
        when = f"{build['built_at']:%Y-%m-%d %H:%M}"
        n = {k: "an unknown number" if build[k] is None else f"{build[k]:,}"
             for k in ("segment_members", "no_consent", "no_identifier", "holdout")}
        raise DestinationError(
            f"The audience '{audience}' is empty: its last build ({when}) has nobody to "
            f"send. Segment '{build['segment']}': {n['segment_members']} member(s); "
            f"{n['no_consent']} without consent for "
            f"{build.get('purpose') or build['channel']}, "
            f"{n['no_identifier']} without an address to reach them on, "
            f"{n['holdout']} held out.",
            f"Check the segment (`passerelle segment count {build['segment']}`) and the "
            "consents. To send it empty anyway (a webhook or table sync then removes everyone "
            "from the destination), add --allow-empty.")
    return build


def export_purpose(build: dict, purpose: str | None) -> str | None:
    """The purpose an export is made under: the destination's, else the audience's (its
    build's, or its channel's for a build made before purposes)."""
    return purpose or build.get("purpose") or audience_purpose(build.get("channel") or "",
                                                                None)


def _members(engine: Engine, audience: str, purpose: str | None,
             ) -> tuple[ir.Table, ir.BooleanValue | None, str | None]:
    """(treated rows of the last build, whether each grants the purpose now or None when
    nothing is to check, the purpose)."""
    build = sendable_build(engine, audience, allow_empty=True)
    am = engine.table(AUDIENCE_MEMBERS)  # written with every build, even an empty one
    rows = am.filter((am.audience == audience) & (am.run_id == build["run_id"])
                     & (am["group"] == TREATED)).select("person_id", "email", "phone")
    wanted = export_purpose(build, purpose)
    if wanted is None:  # an ads/push build of the marketing flags: filtered when built
        return rows, None, None
    ok = granted(engine, rows, wanted)
    if ok is None:
        built_for = export_purpose(build, None)
        if wanted == built_for:  # no consent state to re-check: the build filtered on it
            return rows, None, wanted
        raise DestinationError(
            f"There is no consent state for the purpose '{wanted}' in the warehouse.",
            "Run `passerelle run` (its consent step builds `consents`), and check that "
            "consent.yml declares the purpose.")
    return rows, ok, wanted


def treated(engine: Engine, audience: str, purpose: str | None = None) -> ir.Table:
    """``person_id, email, phone`` of the ``treated`` group of the audience's last build
    who grant the export's purpose (``purpose``, else the audience's): the people a
    destination receives. The holdout never is."""
    rows, ok, _ = _members(engine, audience, purpose)
    return rows if ok is None else rows.filter(ok)  # one row a person a build


def left_out(engine: Engine, audience: str, purpose: str | None = None) -> tuple[int, str | None]:
    """(treated members left out for lack of consent to the export's purpose, the
    purpose)."""
    rows, ok, wanted = _members(engine, audience, purpose)
    if ok is None:
        return 0, wanted
    return int(engine.to_arrow(rows.filter(~ok).count().as_table()).column(0)[0].as_py()), \
        wanted


def consent_note(n: int, purpose: str | None) -> str:
    """What an export's detail says about the people consent left out (the count is in the
    result either way)."""
    return f"; {n} left out for lack of consent ({purpose})" if n else ""


def with_fields(engine: Engine, members: ir.Table, attributes: dict[str, str]) -> ir.Table:
    """``members`` plus ``first_name``, ``last_name`` from ``profiles`` and one column an
    attribute (named as the attribute), each a profiles column or ``trait:<name>``.

    Unknown columns or traits raise :class:`DestinationError` naming what exists.
    """
    profile_cols = [c for c in attributes.values() if not c.startswith("trait:")]
    traits = sorted({c.removeprefix("trait:") for c in attributes.values()
                     if c.startswith("trait:")})
    if engine.exists(PROFILES):
        profiles = engine.table(PROFILES)
        unknown = sorted(set(profile_cols) - set(profiles.columns))
        if unknown:
            raise DestinationError(
                f"profiles has no column {', '.join(unknown)}.",
                f"Use one of: {', '.join(c for c in profiles.columns if '__' not in c)}.")
        wanted = ["person_id", *[c for c in ("first_name", "last_name")
                                 if c in profiles.columns],
                  *[c for c in dict.fromkeys(profile_cols) if c not in
                    ("person_id", "first_name", "last_name")]]
        p = profiles.select(*wanted).rename(_pid="person_id")
        out = members.left_join(p, members.person_id == p._pid).drop("_pid")
    else:
        if profile_cols:
            raise DestinationError("There is no profiles table to take attributes from.",
                                   "Run `passerelle run` (identity builds profiles).")
        out = members
    for col in ("first_name", "last_name"):
        if col not in out.columns:
            out = out.mutate(**{col: ibis.null("string")})
    if traits:
        out = _join_traits(engine, out, traits)
    values: dict[str, ir.Value] = {}
    for name, source in attributes.items():
        column = f"_trait_{source[6:]}" if source.startswith("trait:") else source
        values[name] = out[column].cast("string")
    base = [out[c].cast("string").name(c) for c in BASE_COLUMNS]
    return out.select(*base, **values)


def _join_traits(engine: Engine, t: ir.Table, names: list[str]) -> ir.Table:
    if not engine.exists(TRAITS):
        raise DestinationError("There is no traits table.",
                               "Define traits/*.yml and run `passerelle run`.")
    traits = engine.table(TRAITS)
    known = set(engine.to_arrow(traits.filter(traits.trait.isin(names)).select("trait")
                                .distinct()).column("trait").to_pylist())
    missing = [n for n in names if n not in known]
    if missing:
        raise DestinationError(f"No person has the trait {', '.join(missing)}.",
                               "Check the name in traits/*.yml (and that `passerelle run` "
                               "computed it).")
    for name in names:
        one = traits.filter(traits.trait == name)
        value = ibis.coalesce(one.value_text, one.value_number.cast("string"),
                              one.value_date.cast("string"))
        one = one.select(_tpid=one.person_id, **{f"_trait_{name}": value})
        t = t.left_join(one, t.person_id == one._tpid).drop("_tpid")
    return t
