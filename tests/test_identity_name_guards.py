"""The guards that keep households apart: first names on keys, the address level, and the
last name read from an e-mail address."""

from __future__ import annotations

import ibis
import pytest

from identity_graph_helpers import load, rec
from passerelle.identity import splink_settings as ss
from passerelle.identity.deterministic import deterministic_edges
from passerelle.identity.names import fold
from passerelle.identity.probabilistic import last_name_from_email
from passerelle.identity.tables import CUSTOMER_RECORDS
from passerelle.project.identity_models import Comparison, DeterministicKey, Probabilistic


def test_a_couple_sharing_an_email_stays_two_people(engine):
    load(engine, [
        rec("crm:1", "Victor", "Samson", email="v@x.fr"),
        rec("crm:2", "Victor", "Samson", email="v@x.fr"),
        rec("shop:1", "Capucine", "Samson", email="v@x.fr"),  # his wife, same address
        rec("news:1", None, None, email="v@x.fr"),  # whose? nobody can tell
        rec("crm:3", "Nicolas", "Roy", email="n@x.fr"),
        rec("shop:3", "Nico", "Roy", email="n@x.fr"),  # nickname
        rec("loy:3", "Roy", "Nicolas", email="n@x.fr"),  # names swapped
        rec("news:3", None, None, email="n@x.fr"),  # every name agrees: joins
        rec("crm:4", "Lucas", "Petit", email="l@x.fr"),
        rec("shop:4", "Luaas", "Petit", email="l@x.fr"),  # typo
        rec("a:5", None, None, email="z@x.fr"),
        rec("b:5", None, None, email="z@x.fr"),
    ])
    key = DeterministicKey(field="email", max_names=1, first_names_must_agree=True)
    edges, shared = deterministic_edges(engine, engine.table(CUSTOMER_RECORDS), [key], "r1")
    pairs = sorted(tuple(sorted((r["node_a"], r["node_b"])))
                   for r in engine.to_arrow(edges).to_pylist())
    refused = [(r["value"], r["distinct_names"]) for r in engine.to_arrow(shared).to_pylist()]
    assert refused == [("v@x.fr", 2)]  # two names that disagree; n@x.fr counts one name
    assert pairs == [("a:5", "b:5"), ("crm:3", "loy:3"), ("crm:3", "news:3"),
                     ("crm:3", "shop:3"), ("crm:4", "shop:4")]


def test_first_names_agree_through_an_early_typo_or_a_nickname(engine):
    """A letter replaced or two swapped early in the name (same first letter and length,
    one half as written), and Sandra for Alexandra, agree; a couple's names do not."""
    load(engine, [
        rec("crm:1", "Alix", "Marin", email="a@x.fr"),
        rec("shop:1", "Akix", "Marin", email="a@x.fr"),  # a letter replaced
        rec("crm:2", "Édith", "Aubry", email="e@x.fr"),
        rec("shop:2", "Édtih", "Aubry", email="e@x.fr"),  # two letters swapped
        rec("news:2", None, None, email="e@x.fr"),  # every name agrees now: joins
        rec("crm:3", "Alexandra", "Lecomte", email="s@x.fr"),
        rec("shop:3", "Sandra", "Lecomte", email="s@x.fr"),  # a nickname
        rec("crm:4", "Paul", "Roy", email="p@x.fr"),
        rec("shop:4", "Raul", "Roy", email="p@x.fr"),  # another first letter: two people
        rec("crm:5", "Luc", "Petit", email="l@x.fr"),
        rec("shop:5", "Léa", "Petit", email="l@x.fr"),  # three letters: too short to tell
    ])
    key = DeterministicKey(field="email", max_names=1, first_names_must_agree=True)
    edges, shared = deterministic_edges(engine, engine.table(CUSTOMER_RECORDS), [key], "r1")
    pairs = sorted(tuple(sorted((r["node_a"], r["node_b"])))
                   for r in engine.to_arrow(edges).to_pylist())
    refused = sorted(r["value"] for r in engine.to_arrow(shared).to_pylist())
    assert refused == ["l@x.fr", "p@x.fr"]
    assert pairs == [("crm:1", "shop:1"), ("crm:2", "news:2"), ("crm:2", "shop:2"),
                     ("crm:3", "shop:3")]


def test_without_the_option_a_shared_email_links_everyone(engine):
    load(engine, [rec("crm:1", "Victor", "Samson", email="v@x.fr"),
                  rec("shop:1", "Capucine", "Samson", email="v@x.fr")])
    edges, _ = deterministic_edges(engine, engine.table(CUSTOMER_RECORDS),
                                   [DeterministicKey(field="email", max_names=2)], "r1")
    assert [(r["node_a"], r["node_b"]) for r in engine.to_arrow(edges).to_pylist()] == [
        ("crm:1", "shop:1")]


@pytest.mark.parametrize(("email", "first", "expected"), [
    ("weiss.dominique@wanadoo.fr", "Dominique", "weiss"),
    ("xavier.aubry76@hotmail.fr", "Xavier", "aubry"),
    ("xavieraubry@free.fr", "Xavier", "aubry"),
    ("xaubry.17000@free.fr", "Xavier", "aubry"),  # a number after a dot
    ("jean-christophe.pires.93145@free.fr", "Jean-Christophe", "pires"),
    ("xaubry@free.fr", "Xavier", "aubry"),
    ("jean-philippe_le-gall@free.fr", "Jean-Philippe", "le gall"),
    ("xavier76@free.fr", "Xavier", None),  # no last name in it
    ("victor.samson89@gmail.com", "Capucine", None),  # her husband's address
    (None, "Marie", None),
])
def test_last_name_from_email(email, first, expected):
    t = ibis.memtable({"email": [email], "first": [first]},
                      schema={"email": "string", "first": "string"})
    got = t.select(ln=last_name_from_email(t.email, fold(t.first))).to_pyarrow()
    assert got.column("ln").to_pylist() == [expected]


def test_address_is_a_level_of_the_postcode_comparison():
    config = Probabilistic(comparisons=[
        Comparison(field="first_name", method="name"),
        Comparison(field="postcode", method="postcode"),
        Comparison(field="address_line1", method="address"),
        Comparison(field="city", method="exact")])
    shape = ss.model_shape(config)
    assert [f for f, _ in shape.compared] == ["first_name", "postcode"]
    labels = list(ss.level_labels(config)["postcode"].values())
    assert labels == ["null", ss.HOUSEHOLD, ss.SAME_ADDRESS, ss.NO_STREET, ss.OTHER_STREET,
                      "same city", "same department", "different"]
    with pytest.raises(ValueError, match="level of the postcode comparison"):
        Probabilistic(comparisons=[Comparison(field="address_line1", method="address")])


NAMES_AND_ADDRESS = Probabilistic(comparisons=[
    Comparison(field="first_name", method="name"),
    Comparison(field="last_name", method="name"),
    Comparison(field="postcode", method="postcode"),
    Comparison(field="address_line1", method="address")])


def _postcode_level(engine, left: dict, right: dict) -> str:
    """The postcode level Splink would give a pair, from the levels' own SQL, on ``engine``
    (PostgreSQL with the Jaro-Winkler function Passerelle installs there)."""
    import sqlglot as sg

    if engine.name == "postgres":
        engine._run(ss.POSTGRES_JARO_WINKLER)
    levels = ss._levels("postcode", "postcode", ss.model_shape(NAMES_AND_ADDRESS))
    case = " ".join(f"WHEN {lv['sql_condition']} THEN '{lv['label_for_charts']}'"
                    for lv in levels if lv["sql_condition"] != "ELSE")
    columns = {}
    for side, record in (("l", left), ("r", right)):
        canon = ss.nickname_map().get(record["first_name"], record["first_name"])
        for field, value in (*record.items(), ("first_name__canon", canon)):
            columns[f"{field}_{side}"] = sg.exp.convert(value).sql()
    names = ", ".join(f"CAST({v} AS VARCHAR) AS {k}" for k, v in columns.items())
    sql = f"SELECT CASE {case} ELSE 'different' END AS level FROM (SELECT {names}) AS pair"
    # as Splink runs them: the text as written (sqlglot would rename the function)
    return engine._run(sql)[0][0]


HOME = {"postcode": "69003", "address_line1": "12 rue de la paix"}


@pytest.mark.parametrize(("left", "right", "expected"), [
    ({"first_name": "victor", "last_name": "samson"},
     {"first_name": "capucine", "last_name": "samson"}, ss.HOUSEHOLD),  # his wife
    ({"first_name": "victor", "last_name": "samson"},
     {"first_name": "victor", "last_name": "samson"}, ss.SAME_ADDRESS),
    ({"first_name": "nicolas", "last_name": "roy"},
     {"first_name": "nico", "last_name": "roy"}, ss.SAME_ADDRESS),  # nickname
    ({"first_name": "nicolas", "last_name": "roy"},
     {"first_name": "nicolsa", "last_name": "roy"}, ss.SAME_ADDRESS),  # typo
    ({"first_name": "alexandre", "last_name": "roy"},
     {"first_name": "alex", "last_name": "roy"}, ss.SAME_ADDRESS),  # short form
    ({"first_name": "jean pierre", "last_name": "roy"},
     {"first_name": "jp", "last_name": "roy"}, ss.SAME_ADDRESS),  # initials
    ({"first_name": "jean pierre", "last_name": "roy"},
     {"first_name": "jm", "last_name": "roy"}, ss.HOUSEHOLD),  # his brother's initials
    ({"first_name": "nicolas", "last_name": "roy"},
     {"first_name": "roy", "last_name": "nicolas"}, ss.SAME_ADDRESS),  # swapped
    ({"first_name": None, "last_name": "roy"},
     {"first_name": "nicolas", "last_name": "roy"}, ss.SAME_ADDRESS),  # cannot tell
])
def test_a_partner_at_the_same_address_has_a_level_of_their_own(engine, left, right,
                                                               expected):
    assert _postcode_level(engine, left | HOME, right | HOME) == expected


def test_a_record_without_a_street_line_compares_its_postcode_alone(engine):
    someone = {"first_name": "marie", "last_name": "roy"}
    sign_up = someone | {"postcode": "69003", "address_line1": None}
    assert _postcode_level(engine, someone | HOME, sign_up) == ss.NO_STREET
    assert _postcode_level(engine, someone | HOME, someone | HOME | {
        "address_line1": "3 rue neuve"}) == ss.OTHER_STREET
    assert _postcode_level(engine, someone | HOME,
                           sign_up | {"postcode": "69004"}) == "same department"


def test_the_postcode_without_a_street_weighs_an_equal_postcode():
    from passerelle.identity.probabilistic import _fill_unobserved

    levels = [{"label_for_charts": "null", "is_null_level": True},
              {"label_for_charts": ss.HOUSEHOLD, "m_probability": 0.01, "u_probability": 1e-6},
              {"label_for_charts": ss.SAME_ADDRESS, "m_probability": 0.6,
               "u_probability": 1e-6},
              {"label_for_charts": ss.NO_STREET, "u_probability": 0.002},  # EM never saw it
              {"label_for_charts": ss.OTHER_STREET, "m_probability": 0.2, "u_probability": 0.004},
              {"label_for_charts": "different", "m_probability": 0.19, "u_probability": 0.99}]
    model = _fill_unobserved({"comparisons": [{"comparison_levels": levels}]}, 10**6)
    no_street = model["comparisons"][0]["comparison_levels"][3]
    ratio = (0.01 + 0.6 + 0.2) / (1e-6 + 1e-6 + 0.004)
    assert no_street["m_probability"] == pytest.approx(0.002 * ratio)
