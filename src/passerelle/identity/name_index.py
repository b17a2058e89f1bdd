"""The name search's index: each folded word of each customer record's first and last name.

Finding "dupont helene" by folding every record's names at query time costs a
``TRANSLATE`` per record (tens of seconds on a million people); the index keeps the folded
words (:func:`passerelle.identity.names.fold`, the same folding the matching uses), one row
per record and word, so a search is an equality lookup. Identity refreshes it at the end of
each run, folding only the records that are new or whose names changed (a digest of the
names tells); rows of records that are gone leave with them. Its ``node`` column makes it
part of a person's footprint (access requests and erasure find it like the graph's tables).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity.tables import CUSTOMER_RECORDS, node_of

NAME_WORDS = "identity_name_words"
# A name search reads at most this many words ("Marie-Hélène de la Tour" is five).
MAX_NAME_WORDS = 6


def _names(engine: Engine) -> ir.Table:
    """Each record's node, its names and their digest."""
    records = engine.table(CUSTOMER_RECORDS)
    first = records.first_name.cast("string")
    last = records.last_name.cast("string")
    names = first.fill_null("") + "\x1f" + last.fill_null("")
    return records.select(node=node_of(records), first_name=first, last_name=last,
                          names_sha256=engine.sha256_hex(names))


def _words(records: ir.Table) -> ir.Table:
    from passerelle.identity.names import fold

    # names repeat (a million records hold tens of thousands of names): each distinct name
    # is folded once and joined back; a NULL name joins nothing and stays NULL
    for field in ("first_name", "last_name"):
        values = records.select(_raw=records[field]).distinct()
        values = values.mutate(**{f"_folded_{field}": fold(values._raw)})
        records = records.left_join(values, records[field] == values._raw).drop("_raw")
    full = (records._folded_first_name.fill_null("") + " "
            + records._folded_last_name.fill_null(""))
    # a record without a name keeps one row (word ""), so the next refresh knows it
    return records.select("node", "names_sha256", word=full.split(" ")).unnest(
        "word").distinct()


def refresh_name_words(engine: Engine) -> int:
    """Bring the index up to the customer records; returns the records folded afresh."""
    if not engine.exists(CUSTOMER_RECORDS):
        engine.drop(NAME_WORDS)
        return 0
    names = _names(engine)
    keys = ["node", "names_sha256"]
    if not engine.exists(NAME_WORDS):
        engine.replace_table(NAME_WORDS, _words(names))
        return int(engine.to_arrow(names.count()).as_py())
    index = engine.table(NAME_WORDS)
    current = names.select(*keys)
    fresh = names.anti_join(index.select(*keys).distinct(), keys)
    count = int(engine.to_arrow(fresh.count()).as_py())
    kept = index.semi_join(current, keys)
    stale = int(engine.to_arrow(index.select(*keys).distinct().anti_join(current, keys)
                                .count()).as_py())
    if count or stale:
        engine.replace_table(NAME_WORDS, ibis.union(kept, _words(fresh)))
    return count


def has_words(engine: Engine, words: list[ir.StringValue]) -> ir.Table:
    """The nodes whose folded names hold every one of ``words`` (distinct, folded), in any
    order: "dupont helene" finds Hélène Dupont."""
    index = engine.table(NAME_WORDS)
    found = index.filter(index.word.isin(words)).group_by("node").aggregate(
        words=index.word.nunique())
    return found.filter(found.words == len(words)).select("node")


def name_words(text: str) -> list[str]:
    """The folded words of a query that reads as a name: letters only (an e-mail, a phone or
    an id is not a name), at most :data:`MAX_NAME_WORDS` words."""
    from passerelle.identity.names import fold_text

    words = fold_text(text).split()
    if not words or len(words) > MAX_NAME_WORDS or not all(w.isalpha() for w in words):
        return []
    return words


def scan_words(records: ir.Table, words: list[ir.StringValue]) -> ir.BooleanValue:
    """Without the index: every word (`` word ``, folded, between spaces) is a whole word of
    the record's first and last names folded now, in any order."""
    from passerelle.identity.names import fold

    full = (ibis.literal(" ") + fold(records.first_name.cast("string")).fill_null("") + " "
            + fold(records.last_name.cast("string")).fill_null("") + " ")
    cond = ibis.literal(True)
    for word in words:
        cond &= full.contains(word)
    return cond
