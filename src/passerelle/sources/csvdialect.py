"""Guess how a CSV file is written: encoding, delimiter, decimal mark, header.

French Excel exports are cp1252 with ``;`` and decimal commas; most tools write UTF-8 with
``,``. The guesses look at the first megabyte only, so they cost the same on any file size.
DuckDB's own sniffer is not used: it gives up on a file with one malformed line, and we
want to load the good lines and quarantine the bad one.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from passerelle.errors import ConnectorError
from passerelle.project.models import CsvConnector

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
_MAX_SAMPLE_RECORDS = 200

# Undefined cp1252 bytes (0x81, 0x8D, 0x8F, 0x90, 0x9D) decode as the C1 control of the same
# code, as browsers do (WHATWG windows-1252), instead of failing the whole file.
codecs.register_error(
    "passerelle_c1", lambda e: (e.object[e.start:e.end].decode("latin-1"), e.end)
)

_COMMA_NUMBER = re.compile(r"^[-+]?(\d{1,3}([ .\u00a0\u202f]\d{3})+|\d+),\d+$")
_DOT_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)\.\d+$")


@dataclass(frozen=True)
class Dialect:
    """How one file is written; ``as_dict`` is what staging receives."""

    encoding: str  # Python codec name: "utf-8", "cp1252", ...
    delimiter: str
    decimal: str
    quote: str
    header: bool
    columns: list[str]

    @property
    def is_utf8(self) -> bool:
        return self.encoding in ("utf-8", "utf-8-sig")

    def as_dict(self) -> dict[str, str]:
        return {"delimiter": self.delimiter, "encoding": self.encoding, "decimal": self.decimal}


def _read_sample(path: Path) -> tuple[bytes, bool]:
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES + 1)
    return sample[:SAMPLE_BYTES], len(sample) <= SAMPLE_BYTES


def _codec(name: str, path: Path) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise ConnectorError(
            f"Unknown encoding {name!r} for {path}.",
            "Use 'auto', 'utf-8', 'cp1252' or 'latin-1' in the source's connector.encoding.",
        ) from exc


def detect_encoding(sample: bytes, complete: bool) -> str:
    """UTF-8 if the sample decodes strictly as UTF-8 (BOM or not), else cp1252."""
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=complete)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _records(text: str, delimiter: str, quote: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, quotechar=quote or None,
                        doublequote=True, strict=False)
    records: list[list[str]] = []
    try:
        for record in reader:
            if record:
                records.append(record)
            if len(records) >= _MAX_SAMPLE_RECORDS:
                break
    except csv.Error:
        pass
    return records


def sniff_delimiter(text: str, quote: str) -> str:
    """The candidate that splits the header into most columns, consistently with the rows."""
    best, best_score = ",", (False, 0.0, 0)
    for candidate in DELIMITERS:
        records = _records(text, candidate, quote)
        if not records:
            continue
        width = len(records[0])
        body = records[1:] or records
        consistency = sum(len(r) == width for r in body) / len(body)
        score = (width > 1, round(consistency, 2), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


def detect_decimal(records: list[list[str]]) -> str:
    """``,`` when number-like values with a decimal comma outnumber those with a dot."""
    comma = dot = 0
    for record in records:
        for value in record:
            value = value.strip()
            if _COMMA_NUMBER.match(value):
                comma += 1
            elif _DOT_NUMBER.match(value):
                dot += 1
    return "," if comma > dot else "."


def _unique_names(header: list[str]) -> list[str]:
    """Header names as DuckDB needs them: non-empty and distinct (``Nom``, ``Nom_1``)."""
    names: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(header):
        name = raw.strip() or f"column{i}"
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        names.append(candidate)
    return names


def detect(path: Path, connector: CsvConnector) -> Dialect:
    """The dialect of ``path``, using the connector's settings where they are not 'auto'."""
    sample, complete = _read_sample(path)
    if connector.encoding == "auto":
        encoding = detect_encoding(sample, complete)
    else:
        encoding = _codec(connector.encoding, path)
    text = codecs.getincrementaldecoder(encoding)("passerelle_c1").decode(sample, final=complete)
    text = text.removeprefix("\ufeff")
    if not complete and "\n" in text:  # drop the record cut by the sample's end
        text = text[: text.rindex("\n") + 1]
    delimiter = (sniff_delimiter(text, connector.quote) if connector.delimiter == "auto"
                 else connector.delimiter)
    records = _records(text, delimiter, connector.quote)
    if connector.header:
        columns = _unique_names(records[0]) if records else []
        body = records[1:]
    else:
        width = max((len(r) for r in records), default=0)
        columns = [f"column{i}" for i in range(width)]
        body = records
    decimal = detect_decimal(body) if connector.decimal == "auto" else connector.decimal
    if encoding == "utf-8-sig":
        encoding = "utf-8"
    return Dialect(encoding, delimiter, decimal, connector.quote, connector.header, columns)


def transcode_to_utf8(path: Path, encoding: str, target: Path) -> None:
    """Re-encode ``path`` to UTF-8 in 1 MB chunks (DuckDB reads UTF-8; cp1252 needs this)."""
    decoder = codecs.getincrementaldecoder(encoding)("passerelle_c1")
    with path.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(SAMPLE_BYTES):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))

