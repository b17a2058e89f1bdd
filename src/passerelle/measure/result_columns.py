"""The columns of the campaign results (:func:`passerelle.measure.report.campaign_results`)
and their kinds, importable without pyarrow: a command shows stored results with the same
layout as computed ones."""

from __future__ import annotations

FIGURES = ("conversions", "revenue", "cpa", "roas", "roi")  # each with _low and _high
CAMPAIGN_RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("campaign_id", "string"), ("channel", "string"), ("period", "date"), ("spend", "float"),
    ("reach", "integer"), *((f + s, "float") for f in FIGURES for s in ("", "_low", "_high")),
    ("notes", "string"))
NUMERIC = ("integer", "float")
