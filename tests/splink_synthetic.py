"""Synthetic customer records with a known truth, for the Splink tests and measurements.

People are drawn from small name lists, so unrelated people share first names, surnames,
postcodes and even households (same surname and address, another first name and birth
date). A person's extra records carry the mistakes real sources make: typos, nicknames,
day/month swaps, a missing or moved postcode, accents dropped, swapped names.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

FIRST = ["Jean-Baptiste", "Catherine", "Alexandre", "Nicolas", "Christophe", "Stéphanie",
         "Frédéric", "Guillaume", "Élisabeth", "Marie", "Sophie", "Julien", "Camille", "Léa",
         "Thomas", "Manon", "Hugo", "Chloé", "Louis", "Emma", "Isabelle", "Philippe",
         "Sandrine", "Laurent", "Nathalie", "Pierre", "Céline", "Antoine", "Aurélie", "Mathieu",
         "Valérie", "Sébastien", "Caroline", "Olivier", "Hélène", "Vincent", "Julie", "Romain",
         "Émilie", "François"]
NICK = {"Jean-Baptiste": "JB", "Catherine": "Cathy", "Alexandre": "Alex", "Nicolas": "Nico",
        "Christophe": "Chris", "Stéphanie": "Steph", "Frédéric": "Fred",
        "Guillaume": "William", "Élisabeth": "Babeth", "Isabelle": "Isa", "Thomas": "Tom",
        "Philippe": "Phil", "Sébastien": "Seb", "Mathieu": "Matthieu", "Antoine": "Tony",
        "Caroline": "Caro", "Valérie": "Val", "Pierre": "Pierrot"}
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
        "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
        "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefebvre",
        "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez"]
PLACES = [("75011", "Paris"), ("75015", "Paris"), ("75018", "Paris"), ("69003", "Lyon"),
          ("69007", "Lyon"), ("13008", "Marseille"), ("31000", "Toulouse"), ("33000", "Bordeaux"),
          ("44000", "Nantes"), ("59000", "Lille"), ("67000", "Strasbourg"),
          ("35000", "Rennes"), ("34000", "Montpellier"), ("06000", "Nice"),
          ("38000", "Grenoble"), ("21000", "Dijon"), ("49000", "Angers"), ("76000", "Rouen")]
STREETS = ["rue de la République", "avenue Jean Jaurès", "rue Victor Hugo", "boulevard Voltaire",
           "rue de la Paix", "place de la Mairie", "rue du Moulin", "chemin des Vignes",
           "rue Pasteur", "allée des Tilleuls", "rue Nationale", "rue de l'Église"]
SOURCES = ["crm_contacts", "eshop_customers", "loyalty_cards"]


def _typo(rng: np.random.Generator, text: str) -> str:
    if len(text) < 3:
        return text
    i = int(rng.integers(1, len(text) - 1))
    kind = rng.integers(3)
    if kind == 0:  # swap two neighbours
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:  # drop one
        return text[:i] + text[i + 1:]
    return text[:i] + "aeiourst"[int(rng.integers(8))] + text[i + 1:]


def _strip_accents(text: str) -> str:
    return text.translate(str.maketrans("éèêëàâçîïôöùûüÉÈÊ", "eeeeaaciioouuuEEE"))


def people(n: int, rng: np.random.Generator) -> list[dict]:
    out = []
    for p in range(n):
        if out and rng.random() < 0.15:  # household: someone else's surname and address
            other = out[int(rng.integers(len(out)))]
            last, place, address = other["last_name"], other["place"], other["address"]
        else:
            last = LAST[int(rng.integers(len(LAST)))]
            place = PLACES[int(rng.integers(len(PLACES)))]
            address = f"{int(rng.integers(1, 120))} {STREETS[int(rng.integers(len(STREETS)))]}"
        born = dt.date(1945, 1, 1) + dt.timedelta(days=int(rng.integers(0, 60 * 365)))
        out.append({"person": p, "first_name": FIRST[int(rng.integers(len(FIRST)))],
                    "last_name": last, "birth_date": born, "place": place, "address": address})
    return out


def _variant(rng: np.random.Generator, person: dict) -> dict:
    """One more record of ``person`` as another source would have typed it."""
    first, last, born = person["first_name"], person["last_name"], person["birth_date"]
    (postcode, city), address = person["place"], person["address"]
    r = rng.random(10)
    if r[0] < 0.15 and first in NICK:
        first = NICK[first]
    elif r[0] < 0.30:
        first = _typo(rng, first)
    elif r[0] < 0.40:
        first = _strip_accents(first)
    if r[1] < 0.15:
        last = _typo(rng, last)
    if r[2] < 0.08 and born.day <= 12 and born.day != born.month:
        born = dt.date(born.year, born.day, born.month)
    elif r[2] < 0.14:
        day = born.day + 10 if born.day < 20 and born.day + 10 <= 28 else born.day - 10
        born = born.replace(day=day)  # one character of the ISO date changed
    elif r[2] < 0.20:
        born = None
    if r[3] < 0.04:  # moved away
        postcode, city = PLACES[int(rng.integers(len(PLACES)))]
        address = f"{int(rng.integers(1, 120))} {STREETS[int(rng.integers(len(STREETS)))]}"
    elif r[3] < 0.12:  # moved within the department
        postcode = postcode[:2] + f"{(int(postcode[2:]) + 3) % 1000:03d}"
        address = None
    elif r[3] < 0.16:
        postcode, city = None, None
    if address and r[4] < 0.15:
        address = _typo(rng, address)
    if r[5] < 0.03:  # first and last names typed in each other's field
        first, last = last, first
    return {"first_name": first, "last_name": last, "birth_date": born, "postcode": postcode,
            "city": city, "address_line1": address}


def synthetic_records(n_people: int, seed: int = 7) -> tuple[pa.Table, dict[str, int]]:
    """``customer_records``-shaped rows and node -> true person."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    for person in people(n_people, rng):
        copies = int(rng.choice([1, 2, 3, 4], p=[0.45, 0.3, 0.2, 0.05]))
        for c in range(copies):
            if c == 0 or rng.random() < 0.25:  # the same typing in another source
                (postcode, city) = person["place"]
                values = {"first_name": person["first_name"], "last_name": person["last_name"],
                          "birth_date": person["birth_date"], "postcode": postcode,
                          "city": city, "address_line1": person["address"]}
            else:
                values = _variant(rng, person)
            source = SOURCES[int(rng.integers(len(SOURCES)))]
            record_id = f"R{len(rows):06d}"
            truth[f"{source}:{record_id}"] = person["person"]
            rows.append({"_source": source, "_record_id": record_id, "customer_id": record_id,
                         **values, "country": "FR"})
    schema = pa.schema([("_source", pa.string()), ("_record_id", pa.string()),
                        ("customer_id", pa.string()), ("email", pa.string()),
                        ("phone", pa.string()), ("first_name", pa.string()),
                        ("last_name", pa.string()), ("birth_date", pa.date32()),
                        ("address_line1", pa.string()), ("address_line2", pa.string()),
                        ("postcode", pa.string()), ("city", pa.string()),
                        ("country", pa.string()), ("loyalty_card", pa.string())])
    table = pa.Table.from_pylist([{**{f: None for f in schema.names}, **r} for r in rows],
                                 schema=schema)
    return table, truth


def true_pairs(truth: dict[str, int]) -> set[tuple[str, str]]:
    by_person: dict[int, list[str]] = {}
    for node, person in truth.items():
        by_person.setdefault(person, []).append(node)
    return {(a, b) for nodes in by_person.values() for a in nodes for b in nodes if a < b}


def cluster_pairs(edges: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Pairs inside the connected components of ``edges`` (union-find over a test set)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    return {(a, b) for nodes in groups.values() for a in nodes for b in nodes if a < b}


def precision_recall(found: set, truth: set) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / max(len(found), 1), hits / max(len(truth), 1)
