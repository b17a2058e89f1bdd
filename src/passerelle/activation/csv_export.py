"""CSV exports in the column layouts e-mailing tools import (Brevo, Mailchimp, generic).

The warehouse computes the rows and DuckDB's CSV writer writes them (``COPY ... TO``: in
the warehouse itself on DuckDB, from an Arrow stream otherwise), so a million-row audience
never passes through Python one row at a time.
The file is written under a temporary name, hashed (SHA-256) and renamed, so a reader never
sees half a file and the hash in the export log is the hash of the file on disk. The path
stays inside the project (or an ``allowed_paths`` folder), and an existing file is replaced
only when its hash is one the export log recorded: a file Passerelle did not write is kept.

Layouts (sources in docs/activation.md):

- brevo: ``EMAIL;PRENOM;NOM;SMS`` (``FIRSTNAME;LASTNAME`` for an English-language account),
  ``;`` separator, UTF-8, phone numbers in E.164 (``+33612345678``);
- mailchimp: ``Email Address,First Name,Last Name,Phone Number,Tags``, ``,`` separator,
  UTF-8, tags comma-separated inside one quoted cell; rows without an e-mail are left out
  (Mailchimp requires the address of an e-mail contact);
- generic: ``person_id,email,phone,first_name,last_name``.

When a batch decision was made for the audience (``passerelle decide --audience``), every
layout ends with an ``offer`` column: the offer chosen for the person by the audience's last
batch decision (empty for the default experience).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import sqlglot.expressions as sge

from passerelle.activation.log import (
    ExportResult,
    exported_before,
    finish_export,
    record_members,
    start_export,
)
from passerelle.activation.members import (
    consent_note,
    left_out,
    sendable_build,
    treated,
    with_fields,
)
from passerelle.engines.base import Engine
from passerelle.project.destinations_models import CsvDestination, DestinationError
from passerelle.project.paths import confine
from passerelle.runlog import utcnow

# standard column -> header, per layout (attributes follow under their own names)
LAYOUTS: dict[str, dict[str, str]] = {
    "brevo_fr": {"email": "EMAIL", "first_name": "PRENOM", "last_name": "NOM", "phone": "SMS"},
    "brevo_en": {"email": "EMAIL", "first_name": "FIRSTNAME", "last_name": "LASTNAME",
                 "phone": "SMS"},
    "mailchimp": {"email": "Email Address", "first_name": "First Name",
                  "last_name": "Last Name", "phone": "Phone Number"},
    "generic": {"person_id": "person_id", "email": "email", "phone": "phone",
                "first_name": "first_name", "last_name": "last_name"},
}


def exported_people(engine: Engine, audience: str, destination: CsvDestination) -> ir.Table:
    """The people a file of this format holds: the treated members with an identifier the
    tool needs (no join, no sort: what the export log records)."""
    people = treated(engine, audience, destination.purpose)
    if destination.format == "mailchimp":
        return people.filter(people.email.notnull())
    if destination.format == "brevo":
        return people.filter(people.email.notnull() | people.phone.notnull())
    return people


# written by batch decisions (passerelle.personalize.batch, which imports activation: the
# table is named here rather than imported)
BATCH_DECISIONS = "batch_decisions"


def chosen_offers(engine: Engine, audience: str) -> ir.Table | None:
    """``_offer_pid, offer`` of the audience's last batch decision; None when none was made."""
    if not engine.exists(BATCH_DECISIONS):
        return None
    b = engine.table(BATCH_DECISIONS)
    b = b.filter(b.audience == audience)
    latest = b.filter(b.decided_at == b.decided_at.max())
    if not engine.to_arrow(latest.count()).as_py():
        return None
    # one offer a person even if two placements were decided in the same second
    return latest.group_by("person_id").aggregate(offer=latest.offer.max()).rename(
        _offer_pid="person_id")


def export_rows(engine: Engine, audience: str, destination: CsvDestination) -> ir.Table:
    """The rows of the file, in person order."""
    people = exported_people(engine, audience, destination)
    fields = with_fields(engine, people, destination.attributes)
    offers = chosen_offers(engine, audience)
    if offers is not None:
        if "offer" in destination.attributes:
            raise DestinationError("The attribute offer has the name of the column that "
                                   "carries the batch decision's offer.",
                                   "Rename the attribute.")
        fields = fields.left_join(offers, fields.person_id == offers._offer_pid).drop(
            "_offer_pid")
    key = f"{destination.format}_{destination.language}" if destination.format == "brevo" \
        else destination.format
    layout = LAYOUTS[key]
    clash = sorted(set(destination.attributes) & set(layout.values()))
    if clash:
        raise DestinationError(f"The attribute {', '.join(clash)} has the name of a standard "
                               f"{destination.format} column.", "Rename the attribute.")
    columns: dict[str, ir.Value] = {header: fields[col] for col, header in layout.items()}
    if destination.format == "mailchimp":
        tags = ",".join(destination.tags or [audience])
        columns["Tags"] = ibis.literal(tags, "string")
    columns.update({name: fields[name] for name in destination.attributes})
    if offers is not None:
        columns["offer"] = fields["offer"]
    return fields.order_by("person_id").select(**columns)


def resolve_path(template: str, audience: str, root: Path) -> Path:
    """``{audience}`` and ``{date}`` (UTC, YYYYMMDD-HHMMSS) substituted; relative to ``root``
    and kept inside its allowed folders."""
    text = template.replace("{audience}", audience).replace(
        "{date}", f"{utcnow():%Y%m%d-%H%M%S}")
    return confine(root, text, what="export file")


def refuse_foreign_file(engine: Engine, path: Path) -> None:
    """An existing ``path`` may be replaced only if an earlier export wrote exactly it (its
    SHA-256 is in the export log): a file someone else wrote is never overwritten."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file() and exported_before(engine, sha256_of(path)):
        return
    raise DestinationError(
        f"{path} already exists and is not a file a Passerelle export wrote (its content "
        "matches no export in the export log), so it is left as it is.",
        "Remove or rename that file, or give the destination another `path`.")


def write_csv(engine: Engine, rows: ir.Table, path: Path, delimiter: str) -> tuple[int, str]:
    """Write ``rows`` to ``path`` with DuckDB's CSV writer; returns (rows, SHA-256).

    On a DuckDB warehouse the query and the writer run in one ``COPY (query) TO`` of the
    warehouse itself: no row leaves the engine. Elsewhere the rows stream as Arrow batches
    into an in-memory DuckDB that writes the file. Either way, the same writer and options,
    so the bytes are the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.unlink(missing_ok=True)  # a leftover (or a link planted there) is never written through
    options = (f"FORMAT csv, HEADER true, DELIMITER {sge.convert(delimiter).sql('duckdb')}, "
               "QUOTE '\"', ESCAPE '\"', NULLSTR ''")
    target = sge.convert(str(tmp)).sql("duckdb")
    try:
        if engine.dialect == "duckdb":
            # the query text is Ibis's compilation of an expression (user values are
            # literals in it); COPY answers with the number of rows written
            query = engine.con.compile(rows)
            count = int(engine.con.raw_sql(
                f"COPY ({query}) TO {target} ({options})").fetchall()[0][0])
        else:
            count = _copy_from_arrow(engine, rows, target, options)
    except duckdb.Error as exc:
        tmp.unlink(missing_ok=True)
        raise DestinationError(f"Cannot write {path}: {exc}",
                               "Check that the folder is writable and the disk not full.") \
            from exc
    digest = sha256_of(tmp)
    os.replace(tmp, path)
    return count, digest


def _copy_from_arrow(engine: Engine, rows: ir.Table, target: str, options: str) -> int:
    reader = engine.con.to_pyarrow_batches(rows, chunk_size=100_000)
    writer = duckdb.connect()  # in memory: only its CSV writer is used
    try:
        writer.register("rows", reader)
        return int(writer.execute(
            f"COPY (SELECT * FROM rows) TO {target} ({options})").fetchall()[0][0])
    finally:
        writer.close()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export_csv(engine: Engine, audience: str, destination: CsvDestination, *,
               name: str = "csv", root: Path | str = ".", user: str | None = None,
               allow_empty: bool = False) -> ExportResult:
    """Export the treated members of ``audience`` as a CSV file and log it.

    Returns the :class:`ExportResult` (file path, SHA-256, people). The holdout is never
    exported; the people in the file are recorded in ``activation_log_members``. An empty
    audience is refused unless ``allow_empty`` (then the file holds the header only).
    """
    sendable_build(engine, audience, allow_empty=allow_empty)
    rows = export_rows(engine, audience, destination)
    path = resolve_path(destination.path, audience, Path(root))
    refuse_foreign_file(engine, path)
    delimiter = destination.delimiter or (";" if destination.format == "brevo" else ",")
    export_id = start_export(engine, audience, name, "csv", str(path), user)
    result = ExportResult(export_id, audience, name, "csv", str(path), "failed", 0,
                          file_path=str(path))
    result.no_consent, result.purpose = left_out(engine, audience, destination.purpose)
    try:
        count, digest = write_csv(engine, rows, path, delimiter)
    except Exception as exc:
        result.detail = str(exc)
        finish_export(engine, result)
        raise
    with engine.transaction():
        record_members(engine, export_id, exported_people(engine, audience, destination))
        result.status, result.people, result.sha256 = "delivered", count, digest
        result.detail = f"{destination.format} layout" + consent_note(  # people counted beside
            result.no_consent, result.purpose)
        finish_export(engine, result)
    return result
