"""Folding names for comparison: lower-case ASCII, hyphens and apostrophes as spaces.

One definition, in SQL (:func:`fold`, for records) and in Python (:func:`fold_text`, for what
a user types), so a search finds what matching compares. Imports no Splink: the profile
lookup uses it and must stay light.
"""

from __future__ import annotations

import ibis.expr.types as ir

ACCENTED = "àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ"
PLAIN = "aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY"
LIGATURES = {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"}
_SPACES = ("-", "'", "’")


def fold(value: ir.StringValue) -> ir.StringValue:
    """Lower-case ASCII, hyphens and apostrophes as spaces, trimmed; empty -> NULL."""
    for ligature, plain in LIGATURES.items():
        value = value.replace(ligature, plain)
    value = value.translate(ACCENTED, PLAIN).lower()
    for mark in _SPACES:
        value = value.replace(mark, " ")
    return value.strip().nullif("")


def fold_text(value: str) -> str:
    """:func:`fold` in Python ("Hélène-Marie" -> "helene marie"); "" for nothing left."""
    for ligature, plain in LIGATURES.items():
        value = value.replace(ligature, plain)
    value = value.translate(str.maketrans(ACCENTED, PLAIN)).lower()
    for mark in _SPACES:
        value = value.replace(mark, " ")
    return value.strip()
