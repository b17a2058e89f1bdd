"""The guards that keep households apart: first names on keys, the address level, and the
last name read from an e-mail address."""

from __future__ import annotations

import ibis
import pytest

from identity_graph_helpers import load, rec
from passerelle.identity import splink_settings as ss
from passerelle.identity.deterministic import deterministic_edges
from passerelle.identity.probabilistic import fold, last_name_from_email
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
    assert labels == ["null", "same address", "exact", "same city", "same department",
                      "different"]
    with pytest.raises(ValueError, match="level of the postcode comparison"):
        Probabilistic(comparisons=[Comparison(field="address_line1", method="address")])
