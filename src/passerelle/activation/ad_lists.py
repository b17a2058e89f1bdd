"""Customer lists for the ad platforms: the treated members of an audience who granted the
purpose of ad audiences, their e-mail and phone normalised then hashed with SHA-256, in the
CSV layout each platform documents for a customer-list upload (sources in
docs/activation.md):

- Google Ads Customer Match (``google_customer_match``): headers ``Email,Phone``; e-mails
  trimmed and lower-cased, phones in E.164 (``+33612345678``) before hashing;
- Meta custom audiences (``meta_custom_audience``): headers ``email,phone``; e-mails trimmed
  and lower-cased, phones as digits with the country code and no ``+`` (``33612345678``).

A phone that is not in E.164 (no ``+`` and country code) cannot be normalised without
guessing its country: it is left empty. A person with neither identifier is left out. The
normalising and hashing run in the warehouse (the engine's ``sha256_hex``): no e-mail or
phone passes through Python.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from passerelle.activation.csv_export import refuse_foreign_file, resolve_path, write_csv
from passerelle.activation.log import ExportResult, finish_export, record_members, start_export
from passerelle.activation.members import consent_note, left_out, sendable_build, treated
from passerelle.engines.base import Engine
from passerelle.project.destinations_models import AdListDestination

# layout -> (e-mail header, phone header, phone keeps its "+")
LAYOUTS: dict[str, tuple[str, str, bool]] = {
    "google_customer_match": ("Email", "Phone", True),
    "meta_custom_audience": ("email", "phone", False),
}
_E164 = r"^\+[1-9][0-9]{6,14}$"


def normal_email(email: ir.StringValue) -> ir.StringValue:
    e = email.strip().lower()
    return ibis.ifelse(e.contains("@"), e, ibis.null(dt.string))


def normal_phone(phone: ir.StringValue, plus: bool) -> ir.StringValue:
    """E.164 (``+`` and digits) with ``plus``, else its digits; null when not E.164."""
    compact = phone.re_replace(r"[\s().-]", "")
    digits = compact.re_replace(r"[^0-9]", "")
    return ibis.ifelse(compact.re_search(_E164), ("+" + digits) if plus else digits,
                       ibis.null(dt.string))


def ad_list_people(engine: Engine, audience: str, destination: AdListDestination) -> ir.Table:
    """``person_id`` and the normalised identifiers of the people the file holds."""
    _, _, plus = LAYOUTS[destination.type]
    people = treated(engine, audience, destination.purpose)
    rows = people.select("person_id", email=normal_email(people.email.cast(dt.string)),
                         phone=normal_phone(people.phone.cast(dt.string), plus))
    return rows.filter(rows.email.notnull() | rows.phone.notnull())


def ad_list_rows(engine: Engine, audience: str, destination: AdListDestination) -> ir.Table:
    """The rows of the file (hashed identifiers only), in person order."""
    email_header, phone_header, _ = LAYOUTS[destination.type]
    rows = ad_list_people(engine, audience, destination)
    return rows.order_by("person_id").select(**{
        email_header: engine.sha256_hex(rows.email),
        phone_header: engine.sha256_hex(rows.phone)})


def export_ad_list(engine: Engine, audience: str, destination: AdListDestination, *,
                   name: str = "ads", root: Path | str = ".", user: str | None = None,
                   allow_empty: bool = False) -> ExportResult:
    """Write the customer list of ``audience`` for the destination's platform and log it
    (like :func:`passerelle.activation.csv_export.export_csv`: file written whole then
    renamed, SHA-256 of the file in the export log, people recorded, holdout never sent,
    people without the ad purpose left out and counted)."""
    sendable_build(engine, audience, allow_empty=allow_empty)
    rows = ad_list_rows(engine, audience, destination)
    path = resolve_path(destination.path, audience, Path(root))
    refuse_foreign_file(engine, path)
    export_id = start_export(engine, audience, name, destination.type, str(path), user)
    result = ExportResult(export_id, audience, name, destination.type, str(path), "failed",
                          0, file_path=str(path))
    result.no_consent, result.purpose = left_out(engine, audience, destination.purpose)
    try:
        count, digest = write_csv(engine, rows, path, ",")
    except Exception as exc:
        result.detail = str(exc)
        finish_export(engine, result)
        raise
    with engine.transaction():
        record_members(engine, export_id,
                       ad_list_people(engine, audience, destination).select("person_id"))
        result.status, result.people, result.sha256 = "delivered", count, digest
        result.detail = f"{destination.type} layout, SHA-256" + consent_note(
            result.no_consent, result.purpose)
        finish_export(engine, result)
    return result


__all__ = ["LAYOUTS", "ad_list_rows", "export_ad_list", "normal_email", "normal_phone"]
