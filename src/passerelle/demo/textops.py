"""Vectorised text building for the demo: Arrow compute kernels, no Python loop per row.

Strings are built with ``pyarrow.compute`` (joins, padding, strftime) and files are written
by joining whole columns into lines and handing the resulting buffer to the file at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Strs = pa.Array | pa.ChunkedArray
EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def arr(values: np.ndarray | Sequence) -> pa.Array:
    return values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)


def cat(*parts: Strs | str, sep: str = "") -> pa.Array:
    """Join element-wise; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, sep)


def cat_keep(*parts: Strs | str, sep: str = "") -> pa.Array:
    """Join element-wise, nulls read as empty strings."""
    return pc.binary_join_element_wise(
        *parts, sep, null_handling="replace", null_replacement=""
    )


def num(values: np.ndarray, width: int = 0) -> pa.Array:
    out = pc.cast(pa.array(np.asarray(values, dtype=np.int64)), pa.string())
    return pc.utf8_lpad(out, width=width, padding="0") if width else out


def where(mask: np.ndarray, yes: Strs | str | None, no: Strs | str | None) -> pa.Array:
    mask_arr = pa.array(np.asarray(mask, dtype=bool))
    yes = pa.scalar(yes, pa.string()) if yes is None or isinstance(yes, str) else yes
    no = pa.scalar(no, pa.string()) if no is None or isinstance(no, str) else no
    return pc.if_else(mask_arr, yes, no)


def null_where(mask: np.ndarray, values: Strs) -> pa.Array:
    return where(mask, None, values)


def take(pool: pa.Array, idx: np.ndarray) -> pa.Array:
    return pool.take(pa.array(np.asarray(idx, dtype=np.int64)))


def choose(codes: np.ndarray, *options: Strs) -> pa.Array:
    """Row i takes ``options[codes[i]][i]``."""
    return pc.choose(pa.array(np.asarray(codes, dtype=np.int8)), *options)


def upper(values: Strs) -> pa.Array:
    return pc.utf8_upper(values)


def strftime(seconds: np.ndarray, fmt: str) -> pa.Array:
    """Format epoch seconds (naive local time) with a strftime pattern.

    The few patterns the demo uses are cut out of Arrow's ISO cast (30x faster than
    ``pc.strftime``, which formats element by element).
    """
    ts = pa.array(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"))
    return _format(ts, fmt)


def iso_ms_utc(millis: np.ndarray) -> pa.Array:
    ts = pa.array(np.asarray(millis, dtype=np.int64).astype("datetime64[ms]"))
    return cat(_format(ts, "%Y-%m-%dT%H:%M:%S.ms"), "Z")


def _format(ts: pa.Array, fmt: str) -> pa.Array:
    iso = pc.cast(ts, pa.string())  # 'YYYY-MM-DD HH:MM:SS[.mmm]'
    s = pc.utf8_slice_codeunits
    y, m, d, hm = s(iso, 0, 4), s(iso, 5, 7), s(iso, 8, 10), s(iso, 11, 16)
    if fmt == "%Y-%m-%d":
        return s(iso, 0, 10)
    if fmt == "%Y-%m-%dT%H:%M:%S":
        return cat(s(iso, 0, 10), s(iso, 11, 19), sep="T")
    if fmt == "%Y-%m-%dT%H:%M:%S.ms":
        return cat(s(iso, 0, 10), s(iso, 11, 23), sep="T")
    if fmt == "%d/%m/%Y":
        return cat(d, m, y, sep="/")
    if fmt == "%d/%m/%Y %H:%M":
        return cat(cat(d, m, y, sep="/"), hm, sep=" ")
    return pc.strftime(ts, format=fmt)


def hex_ids(rng: np.random.Generator, n: int, uuid: bool = True) -> pa.Array:
    """Random UUID-v4-shaped strings (or 32 hex chars), from one draw of bytes."""
    if n == 0:
        return pa.array([], pa.string())
    hexed = rng.bytes(16 * n).hex().encode()
    h = pa.Array.from_buffers(pa.binary(32), n, [None, pa.py_buffer(hexed)]).cast(pa.string())
    if not uuid:
        return h
    s = pc.utf8_slice_codeunits
    return cat(s(h, 0, 8), s(h, 8, 12), cat("4", s(h, 13, 16)), cat("a", s(h, 17, 20)),
               s(h, 20, 32), sep="-")


def euros(cents: np.ndarray, comma: bool) -> pa.Array:
    """Amounts from integer cents: '49.90' or '49,90'."""
    cents = np.asarray(cents, dtype=np.int64)
    return cat(num(cents // 100), num(cents % 100, 2), sep="," if comma else ".")


def phones(numbers: np.ndarray, style: np.ndarray) -> pa.Array:
    """French mobiles (9 digits after the 0) in the formats people type.

    style 0: ``06 12 34 56 78``, 1: ``+33612345678``, 2: ``0612345678``,
    3: ``06.12.34.56.78``, 4: ``+33 6 12 34 56 78``.
    """
    digits = num(numbers, 9)
    s = pc.utf8_slice_codeunits
    pairs = [s(digits, i, i + 2) for i in (1, 3, 5, 7)]
    first = s(digits, 0, 1)
    national = cat("0", first)
    return choose(
        style,
        cat(national, *pairs, sep=" "),
        cat("+33", digits),
        cat("0", digits),
        cat(national, *pairs, sep="."),
        cat("+33 ", first, " ", cat(*pairs, sep=" ")),
    )


def json_str(values: Strs) -> pa.Array:
    """A JSON string literal of each value (values must not need escaping), or null."""
    return pc.fill_null(cat('"', values, '"'), "null")


def json_pool(pool: Sequence[str]) -> pa.Array:
    """JSON-escape a small pool once (distinct values), quotes included."""
    return pa.array([json.dumps(v, ensure_ascii=False) for v in pool])


def typo(values: Strs, rng: np.random.Generator) -> pa.Array:
    """One edit per value: drop, double, swap two neighbours or replace one letter.

    Runs over the few values chosen for a typo (a few percent of a column), each a short
    name, so a Python pass over them is cheap; the choices themselves come from numpy.
    """
    items = pa.array(values).to_pylist()
    n = len(items)
    ops = rng.integers(0, 4, n)
    pos = rng.random(n)
    letters = rng.integers(0, 26, n)
    out = []
    for text, op, p, letter in zip(items, ops, pos, letters, strict=True):
        if not text or len(text) < 3:
            out.append(text)
            continue
        i = 1 + int(p * (len(text) - 2))  # keep the first letter, as most typos do
        if op == 0:
            text = text[:i] + text[i + 1:]
        elif op == 1:
            text = text[:i] + text[i] + text[i:]
        elif op == 2 and text[i - 1] != text[i]:
            text = text[: i - 1] + text[i] + text[i - 1] + text[i + 1:]
        else:
            new = chr(97 + int(letter))
            new = new if new != text[i].lower() else chr(97 + (int(letter) + 1) % 26)
            text = text[:i] + new + text[i + 1:]
        out.append(text)
    return pa.array(out, pa.string())


def apply(values: pa.Array, idx: np.ndarray, replacement: pa.Array) -> pa.Array:
    """``values`` with positions ``idx`` replaced by ``replacement`` (same length as idx)."""
    if len(idx) == 0:
        return values
    n = len(values)
    pick = np.arange(n, dtype=np.int64)
    pick[idx] = n + np.arange(len(idx))
    both = pa.concat_arrays([values.cast(pa.string()), replacement.cast(pa.string())])
    return both.take(pa.array(pick))


# ---------------------------------------------------------------------------- writers
def _csv_field(values: Strs, delimiter: str) -> pa.Array:
    values = pc.cast(values, pa.string())
    special = "\\t" if delimiter == "\t" else delimiter
    needs = pc.match_substring_regex(values, "[" + special + '"\n]')
    quoted = cat('"', pc.replace_substring(values, '"', '""'), '"')
    return pc.if_else(pc.fill_null(needs, False), quoted, values)


def lines_bytes(lines: pa.Array, newline: str) -> bytes:
    """Concatenate non-null strings, each followed by ``newline``, without a Python loop."""
    if len(lines) == 0:
        return b""
    with_nl = cat(lines, newline)
    if isinstance(with_nl, pa.ChunkedArray):
        with_nl = with_nl.combine_chunks()
    offsets = np.frombuffer(with_nl.buffers()[1], dtype=np.int32)[
        with_nl.offset : with_nl.offset + len(with_nl) + 1]
    data = with_nl.buffers()[2]
    return data.to_pybytes()[offsets[0] : offsets[-1]]


def csv_bytes(
    columns: dict[str, Strs],
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\n",
    header: bool = True,
) -> bytes:
    """One CSV chunk: minimal quoting, nulls as empty fields, in the given encoding."""
    fields = [_csv_field(v, delimiter) for v in columns.values()]
    lines = pc.binary_join_element_wise(
        *fields, delimiter, null_handling="replace", null_replacement=""
    )
    body = lines_bytes(lines, newline)
    head = (delimiter.join(columns) + newline).encode() if header else b""
    data = head + body
    return data if encoding == "utf-8" else data.decode("utf-8").encode(encoding)


def write(path: Path, data: bytes, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab" if append else "wb") as f:
        f.write(data)
