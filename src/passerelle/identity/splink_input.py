"""Splink's input: the prepared columns it compares, and the signature pre-pass.

Why a pre-pass: records identical on every prepared column Splink reads (a CRM contact and
the same person's loyalty card, typed the same way) get identical comparison vectors. Splink
scores one representative per distinct *signature*; its edges are expanded back to every
record of both signatures, and records of one signature are linked together with the
weight Splink would give them (exact level on each non-null field). Blocking reads the same
columns, so the expanded edges are exactly those Splink would find on all records.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from passerelle.engines.base import Engine
from passerelle.identity import splink_settings as ss
from passerelle.identity.names import fold
from passerelle.project.identity_models import Probabilistic

MIN_RECORDS = 50
INPUT_TABLE = "__passerelle_splink_input"
MEMBERS_TABLE = "__passerelle_splink_members"
PAIR_TABLES = ("__passerelle_splink_pair_l", "__passerelle_splink_pair_r")
TF_TABLE = "__passerelle_splink_tf_"  # + field: term frequencies Splink is given
TRAIN_TABLE = "__passerelle_splink_train"
NEW_TABLE = "__passerelle_splink_new"


# -- prepared columns ----------------------------------------------------------------------------
def node_expr(records: ir.Table) -> ir.StringValue:
    return records["_source"].cast("string").concat(":", records["_record_id"].cast("string"))


def _email_words(email: ir.StringValue) -> ir.StringValue:
    """The local part of an address, lower-case, without the number people or mail
    providers append (``marie.dupont85``, ``luc.georges.92341``, ``croyer_1984``)."""
    local = email.cast("string").lower().re_extract(r"^([^@]+)@", 1)
    return local.re_replace(r"[._-]*[0-9]+$", "")


def last_name_from_email(email: ir.StringValue, first: ir.StringValue) -> ir.StringValue:
    """The last name an e-mail address spells beside a (folded) first name, folded; NULL
    when the address does not hold the first name (a partner's address, a pseudonym).

    Local parts read: ``first.last``, ``first_last``, ``last.first``, ``firstlast`` and
    ``flast`` (initial), a trailing number dropped (``marie.dupont85``, ``mdupont.1985``).
    """
    local = _email_words(email).replace("-", " ")
    n = first.length()
    rest = ibis.cases(
        (local.startswith(first.concat(".")) | local.startswith(first.concat("_")),
         local.substr(n + 1)),
        (local.endswith(ibis.literal(".").concat(first))
         | local.endswith(ibis.literal("_").concat(first)),
         local.substr(0, local.length() - n - 1)),
        (local.startswith(first), local.substr(n)),
        (local.substr(0, 1) == first.substr(0, 1), local.substr(1)),
        else_=ibis.null("string"),
    )
    rest = rest.strip()
    return ibis.ifelse(rest.re_search(r"^[a-z][a-z ]*[a-z]$") & (rest.length() >= 2),
                       rest, ibis.null("string"))


def names_from_email(email: ir.StringValue) -> tuple[ir.StringValue, ir.StringValue]:
    """(first, last) that an address of two words spells, folded: ``marie.dupont85@`` and
    ``marie_dupont@`` give (marie, dupont); NULLs for any other form. ``dupont.marie@``
    gives them swapped, which the "swapped names" level of the model recognises."""
    local = _email_words(email)
    two = local.re_search(r"^[a-z][a-z-]*[a-z][._][a-z][a-z-]*[a-z]$")
    words = [local.re_extract(r"^([a-z-]+)[._]([a-z-]+)$", i).replace("-", " ") for i in (1, 2)]
    return (ibis.ifelse(two, words[0], ibis.null("string")),
            ibis.ifelse(two, words[1], ibis.null("string")))


def year_from_email(email: ir.StringValue) -> ir.StringValue:
    """The two-digit year an address's local part ends with after a letter or a
    separator (``marie.dupont85@``, ``marie_1985@`` give 85); NULL for any other number
    (``luc.georges.92341@``) or none."""
    digits = email.cast("string").lower().re_extract(r"^[^@]*[a-z._-]([0-9]+)@", 1)
    return ibis.cases(
        (digits.length() == 2, digits),
        ((digits.length() == 4) & (digits.startswith("19") | digits.startswith("20")),
         digits.substr(2, 2)),
        else_=ibis.null("string"))


def prepare(records: ir.Table, config: Probabilistic) -> ir.Table:
    """``node`` + the prepared columns Splink compares (names folded, nickname forms)."""
    shape = ss.model_shape(config)
    methods = dict(shape.compared)
    # names repeat (street lines hardly do): theirs are folded once per distinct value
    records = _with_folded(records, [
        f for f in shape.columns if not f.endswith(ss.CANON_SUFFIX) and f != ss.EMAIL_YEAR
        and records[f].type().is_string() and methods.get(f, "name") == "name"])
    columns: dict[str, ir.Value] = {"node": node_expr(records)}
    for field in shape.columns:
        if field.endswith(ss.CANON_SUFFIX) or field == ss.EMAIL_YEAR:
            continue
        column = records[field]
        if f"{_FOLDED}{field}" in records.columns:
            column = records[f"{_FOLDED}{field}"]
        elif column.type().is_string():
            text = column.strip()
            column = fold(text) if methods.get(field, "name") != "postcode" else text.nullif("")
        elif column.type().is_temporal():
            column = column.cast("date")
        columns[field] = column
    if "last_name" in columns and "first_name" in columns:
        if config.last_name_from_email:
            columns["last_name"] = ibis.coalesce(columns["last_name"], last_name_from_email(
                records["email"], columns["first_name"]))
        if config.first_name_from_email:
            first, last = names_from_email(records["email"])
            nameless = columns["first_name"].isnull()
            columns["last_name"] = ibis.ifelse(
                nameless, ibis.coalesce(columns["last_name"], last), columns["last_name"])
            columns["first_name"] = ibis.ifelse(nameless, first, columns["first_name"])
    if shape.email_year:  # only for a record without a birth date: one piece of evidence
        columns[ss.EMAIL_YEAR] = ibis.ifelse(columns["birth_date"].isnull(),
                                             year_from_email(records["email"]),
                                             ibis.null("string"))
    prepared = records.select(**columns)
    if shape.nickname_fields:
        nicknames = ss.nickname_map()
        prepared = prepared.mutate(**{
            f + ss.CANON_SUFFIX: prepared[f].substitute(nicknames, else_=prepared[f])
            for f in shape.nickname_fields})
    return prepared


_FOLDED = "_folded_"


def _with_folded(records: ir.Table, fields: list[str]) -> ir.Table:
    """``records`` with ``_folded_<field>`` = ``fold(field.strip())`` for each field, folded
    once per distinct value and joined back: names repeat, and a million records hold far
    fewer distinct names, so the string functions run a fraction of the times. A NULL
    joins nothing and stays NULL, as folding it gives."""
    for field in fields:
        values = records.select(**{f"_raw_{field}": records[field]}).distinct()
        values = values.mutate(**{f"{_FOLDED}{field}": fold(values[f"_raw_{field}"].strip())})
        joined = records.left_join(values, records[field] == values[f"_raw_{field}"])
        records = joined.drop(f"_raw_{field}")
    return records


def signatures(prepared: ir.Table) -> ir.Table:
    """Each record with the representative of its signature (smallest node) and its size."""
    cols = [c for c in prepared.columns if c != "node"]
    window = ibis.window(group_by=[prepared[c] for c in cols])
    return prepared.mutate(rep=prepared.node.min().over(window),
                           sig_size=prepared.node.count().over(window))



def _materialise_input(engine: Engine, records: ir.Table, config: Probabilistic,
                       prepass: bool) -> tuple[int, int]:
    """Write the Splink input (representatives) and the member map; return counts.

    The member map keeps the prepared columns, so the representatives are read from it
    instead of preparing and grouping every record a second time."""
    members = signatures(prepare(records, config))
    if not prepass:
        members = members.mutate(rep=members.node, sig_size=ibis.literal(1, "int64"))
    engine.replace_table(MEMBERS_TABLE, members)
    stored = engine.table(MEMBERS_TABLE)
    engine.replace_table(INPUT_TABLE, stored.filter(stored.node == stored.rep).drop(
        "rep", "sig_size"))
    return int(stored.count().to_pyarrow().as_py()), engine.count(INPUT_TABLE)


def _drop_own_tables(engine: Engine) -> None:
    for name in (INPUT_TABLE, MEMBERS_TABLE, TRAIN_TABLE, *PAIR_TABLES):
        engine.drop(name)


def _tf_columns(model: dict) -> list[str]:
    return sorted({lv["tf_adjustment_column"] for c in model["comparisons"]
                   for lv in c["comparison_levels"] if lv.get("tf_adjustment_column")})


def term_frequencies(among: ir.Table, field: str, model: dict | None = None) -> ir.Table:
    """(value, ``tf_<field>``): the share of ``among``'s non-null values of ``field`` equal
    to the value, as Splink computes its term-frequency tables.

    For a field of :func:`~passerelle.identity.splink_settings.relative_frequency_fields`
    of the trained ``model``, the share is multiplied by u_exact / sum(share²): Splink's
    adjustment log2(u_exact / tf) then becomes log2(sum(share²) / share), the average
    chance that two strangers share a value over this value's, at each level it weighs.
    """
    known = among.filter(among[field].notnull())
    total = known.count().as_scalar().cast("float64")
    tf = known.group_by(field).aggregate(n=known.count())
    share = tf.n.cast("float64") / total
    if model is not None and field in ss.relative_frequency_fields(model):
        comparison = next(c for c in model["comparisons"] if c["output_column_name"] == field)
        u_exact = float(ss.exact_level(comparison)["u_probability"])
        share = share * u_exact / (share * share).sum().over()
    return tf.select(tf[field], **{f"tf_{field}": share})


def with_term_frequencies(table: ir.Table, model: dict, among: ir.Table) -> ir.Table:
    """``table`` with ``tf_<field>`` for each term-frequency field of ``model``."""
    for field in _tf_columns(model):
        table = table.left_join(term_frequencies(among, field, model), field).drop(
            f"{field}_right")
    return table


def key_linked_pairs(engine: Engine) -> tuple[ir.Table, ir.Table, ir.Table] | None:
    """The pairs the deterministic keys linked (``identity_key_edges``), between records of
    different signatures as Splink sees them: ``(joined, a, b)`` where ``a`` and ``b`` are
    the two sides' rows of the Splink input inside ``joined``. None before any key link."""
    from passerelle.identity.tables import KEY_EDGES

    if not engine.exists(KEY_EDGES) or not engine.exists(MEMBERS_TABLE):
        return None
    edges = engine.table(KEY_EDGES)
    members = engine.table(MEMBERS_TABLE).select("node", "rep")
    m_a, m_b = members.view(), members.view()
    pairs = edges.join(m_a, edges.node_a == m_a.node).join(m_b, edges.node_b == m_b.node)
    pairs = pairs.select(a=m_a.rep, b=m_b.rep)
    pairs = pairs.filter(pairs.a != pairs.b).distinct()
    reps = engine.table(INPUT_TABLE)
    r_a, r_b = reps.view(), reps.view()
    return pairs.join(r_a, pairs.a == r_a.node).join(r_b, pairs.b == r_b.node), r_a, r_b
