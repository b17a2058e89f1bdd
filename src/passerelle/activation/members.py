"""Who an activation sends: the treated members of an audience's latest build, with the
profile fields and traits a destination asks for.

The holdout is filtered out here, once, so no destination can send it by mistake. Everything
is one Ibis expression run by the warehouse; nothing is fetched row by row.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.activation.models import DestinationError
from passerelle.engines.base import Engine

AUDIENCE_MEMBERS = "audience_members"  # written by passerelle.segments
PROFILES = "profiles"
TRAITS = "traits"
BASE_COLUMNS = ("person_id", "email", "phone", "first_name", "last_name")
# The group an audience sends to: 'treated' (passerelle.segments.audience.TREATED, the name
# measurement uses too). 'target' is how audiences built before the vocabulary was unified
# named it; such a build is still sent until the next run rebuilds it. Nothing else (the
# holdout, or a group this module does not know) is ever sent.
SENT_GROUPS = ("treated", "target")


def latest_build(engine: Engine, audience: str) -> ir.Table:
    """Every row (treated and holdout) of the audience's most recent build.

    ``audience_members`` may keep several builds; the latest is the ``run_id`` of the row
    built last, so a half-written newer build of another audience never leaks in.
    """
    if not engine.exists(AUDIENCE_MEMBERS):
        raise DestinationError("No audience has been built yet (no audience_members table).",
                               "Define the audience, then run `passerelle run`.")
    am = engine.table(AUDIENCE_MEMBERS)
    mine = am.filter(am.audience == audience)
    last_run = mine.order_by([ibis.desc("built_at"), ibis.desc("run_id")]).limit(1)
    return mine.filter(mine.run_id == last_run.select("run_id").as_scalar())


def treated(engine: Engine, audience: str) -> ir.Table:
    """``person_id, email, phone`` of the ``treated`` group: the people a destination
    receives. The holdout never is."""
    build = latest_build(engine, audience)
    am = engine.table(AUDIENCE_MEMBERS)
    if engine.to_arrow(am.filter(am.audience == audience).select("run_id").limit(1)) \
            .num_rows == 0:
        raise DestinationError(f"The audience '{audience}' has no member: it was never built "
                               "or its name is wrong.",
                               "Check the name with `passerelle segment list`, then run "
                               "`passerelle run`.")
    rows = build.filter(build["group"].isin(SENT_GROUPS))
    return rows.select("person_id", "email", "phone")  # one row a person a build


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
