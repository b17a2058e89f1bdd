"""CSV exports on this machine that still hold an erased person.

An export sent to Brevo or a partner is out of reach; a CSV file written by ``passerelle
export`` and still on disk is not. Erasure lists the files the export log says contained the
person; on request (``--rewrite-exports``) each is rewritten without their rows, with the
same writer and options as the export (same columns, separator, quoting), and the export
log's SHA-256 and people count are updated, so the log still describes the file on disk.

A row is the person's when its ``person_id`` is theirs (generic layout) or when its e-mail or
phone is one of their own identifiers (compared as SHA-256 hashes of the normalised values,
as the suppression list does). A row that only holds an identifier other people share (a
family address) cannot be told from the other person's row and is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import sqlglot as sg
import sqlglot.expressions as sge

from passerelle.engines.base import Engine
from passerelle.privacy.footprint import Footprint

EMAIL_HEADERS = {"email", "email address"}
PHONE_HEADERS = {"phone", "sms", "phone number"}


def local_export_files(fp: Footprint) -> list[dict[str, Any]]:
    """The CSV exports that contained the person and whose file is still on disk."""
    seen: set[str] = set()
    files = []
    for export in fp.exports:
        path = export.get("file_path")
        if export.get("kind") == "csv" and path and path not in seen and Path(path).is_file():
            seen.add(path)
            files.append({"export_id": export["export_id"], "file": path})
    return files


def rewrite_exports(engine: Engine, fp: Footprint, files: list[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    """Rewrite each file without the person's rows; returns file, rows removed, new hash."""
    from passerelle.activation.csv_export import sha256_of, write_csv
    from passerelle.engines.duckdb import DuckDBEngine

    done = []
    with DuckDBEngine(":memory:") as scratch:  # DuckDB's CSV reader and writer, any engine
        for entry in files:
            path = Path(entry["file"])
            delimiter = _delimiter(path)
            rows = scratch.con.read_csv(path, all_varchar=True, header=True, delim=delimiter,
                                        quote='"', escape='"')
            theirs = _theirs(scratch, rows, fp)
            removed = 0 if theirs is None else int(
                scratch.to_arrow(rows.filter(theirs).count()).as_py())
            if not removed:
                continue
            old = sha256_of(path)
            kept = rows.filter(~theirs)
            _, digest = write_csv(scratch, kept, path, delimiter)
            _update_log(engine, str(path), old, digest, removed)
            done.append({"export_id": entry["export_id"], "file": str(path),
                         "rows_removed": removed, "sha256": digest})
    return done


def _delimiter(path: Path) -> str:
    with path.open(encoding="utf-8") as f:
        header = f.readline()
    return max((";", ",", "\t"), key=header.count)


def _theirs(engine: Engine, rows: ir.Table, fp: Footprint) -> ir.BooleanValue | None:
    hashes = fp.hashes()

    def of(kind: str) -> ir.Column:
        return hashes.filter(hashes.kind == kind).value_sha256

    conditions = []
    for column in rows.columns:
        header = column.strip().lower()
        value = rows[column].strip()
        if header == "person_id":
            conditions.append(value == ibis.literal(fp.person_id))
        elif header in EMAIL_HEADERS:
            conditions.append(engine.sha256_hex(value.lower()).isin(of("email")))
        elif header in PHONE_HEADERS:
            conditions.append(engine.sha256_hex(value).isin(of("phone")))
    return ibis.or_(*conditions).fill_null(False) if conditions else None


def _update_log(engine: Engine, path: str, old: str, new: str, removed: int) -> None:
    """The log rows that describe this very file (same path, same hash) get its new hash."""
    from passerelle.activation.log import ACTIVATION_LOG

    people = sg.column("people", quoted=True)
    engine.execute(sge.update(
        sg.table(ACTIVATION_LOG, quoted=True),
        {"sha256": sge.convert(new), "people": sge.Greatest(
            this=sge.Sub(this=people, expression=sge.convert(removed)),
            expressions=[sge.convert(0)])},
        where=sge.and_(sg.column("file_path", quoted=True).eq(sge.convert(path)),
                       sg.column("sha256", quoted=True).eq(sge.convert(old)))))
