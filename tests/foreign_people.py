"""Person lists from elsewhere, with their truth: not the demo retailer's generator.

German people drawn with Faker's ``de_DE`` provider (its own name, street and city lists):
first and last names, birth date, street address, postcode, city, federal state, gender and
an 11-digit tax identifier (Steuer-ID). No e-mail, no phone, no loyalty card. Two lists
(``melderegister`` and ``kundenliste``) with their own column names and date formats; a
person is in one list or both, and some are twice in one list. Each record is typed
independently with the mistakes real lists carry: typos in names, ß/umlauts spelled out,
``Straße`` shortened, day/month swapped, a one-digit birth-date typo, a move (new address),
a missing postcode, a tax id missing or with a digit typo or two digits swapped. Households
share a surname and an address; Faker's name lists make namesakes common.

``write_project`` lays them out as a Passerelle project with the recommended identity.yml
(``blocking: auto``), the tax id hashed at staging, and ``truth.csv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import textwrap
from pathlib import Path

SOURCES = ("melderegister", "kundenliste")
SPELLED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                         "Ü": "Ue"})


def _typo(rng: random.Random, text: str) -> str:
    if len(text) < 4:
        return text
    i = rng.randrange(1, len(text) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + rng.choice("aeinrstlu") + text[i + 1:]


def _digit_typo(rng: random.Random, digits: str) -> str:
    i = rng.randrange(len(digits))
    if rng.random() < 0.5 and i < len(digits) - 1:  # two neighbours swapped
        return digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
    return digits[:i] + str((int(digits[i]) + rng.randrange(1, 10)) % 10) + digits[i + 1:]


def _address(fake) -> dict:
    return {"street": f"{fake.street_name()} {fake.building_number()}",
            "postcode": fake.postcode(), "city": fake.city(), "state": fake.state()}


def people(n: int, seed: int = 7) -> list[dict]:
    from faker import Faker

    fake = Faker("de_DE")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    out: list[dict] = []
    for p in range(n):
        gender = rng.choice("FM")
        first = fake.first_name_female() if gender == "F" else fake.first_name_male()
        if out and rng.random() < 0.12:  # a household: someone's surname and address
            other = out[rng.randrange(len(out))]
            last, address = other["last_name"], dict(other["address"])
        else:
            last, address = fake.last_name(), _address(fake)
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 65 * 365))
        tax_id = str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(10))
        out.append({"person": f"T{p:07d}", "gender": gender, "first_name": first,
                    "last_name": last, "birth_date": born, "address": address,
                    "tax_id": tax_id, "fake_seed": rng.random()})
    return out


def _variant(rng: random.Random, person: dict, fake) -> dict:
    first, last, born = person["first_name"], person["last_name"], person["birth_date"]
    address = dict(person["address"])
    tax_id: str | None = person["tax_id"]
    gender: str | None = person["gender"]
    if rng.random() < 0.08:
        first = _typo(rng, first)
    if rng.random() < 0.08:
        last = _typo(rng, last)
    if rng.random() < 0.10:
        first, last = first.translate(SPELLED), last.translate(SPELLED)
    r = rng.random()
    birth: dt.date | None = born
    if r < 0.03 and born.day <= 12 and born.day != born.month:
        birth = dt.date(born.year, born.day, born.month)
    elif r < 0.07:
        text = born.isoformat()
        i = rng.choice([2, 3, 6, 8, 9])
        typo = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
        try:
            birth = dt.date.fromisoformat(typo)
        except ValueError:
            birth = born
    elif r < 0.11:
        birth = None
    if rng.random() < 0.08:  # moved
        address = _address(fake)
    elif rng.random() < 0.05:
        address["street"] = _typo(rng, address["street"])
    if rng.random() < 0.10:
        address["street"] = address["street"].replace("straße", "str.").replace("Straße", "Str.")
    if rng.random() < 0.03:
        address["postcode"] = None
    r = rng.random()
    if r < 0.25:
        tax_id = None
    elif r < 0.30:
        tax_id = _digit_typo(rng, tax_id)
    if rng.random() < 0.10:
        gender = None
    return {"first_name": first, "last_name": last, "birth_date": birth, "gender": gender,
            "tax_id": tax_id, **address}


def records(persons: list[dict], seed: int = 7) -> list[dict]:
    """Records of both lists: ``source``, ``id``, fields, ``person`` (the truth)."""
    from faker import Faker

    fake = Faker("de_DE")
    fake.seed_instance(seed + 1)
    rng = random.Random(seed + 1)
    out = []
    counters = dict.fromkeys(SOURCES, 0)
    for person in persons:
        r = rng.random()
        lists = ["melderegister", "kundenliste"] if r < 0.45 else (
            ["melderegister"] if r < 0.75 else ["kundenliste"])
        if rng.random() < 0.12:  # twice in one list
            lists.append(rng.choice(SOURCES))
        for source in lists:
            counters[source] += 1
            out.append({"source": source, "id": f"{source[:1].upper()}{counters[source]:07d}",
                        "person": person["person"], **_variant(rng, person, fake)})
    rng.shuffle(out)
    return out


def _write_csv(path: Path, rows: list[dict], columns: dict[str, str], date_format: str,
               gender_words: dict[str, str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["id", *columns.values()])
        for row in rows:
            values = []
            for field in columns:
                value = row[field]
                if isinstance(value, dt.date):
                    value = value.strftime(date_format)
                elif field == "gender" and value is not None:
                    value = gender_words[value]
                values.append("" if value is None else value)
            writer.writerow([row["id"], *values])


LIST_COLUMNS = {
    "melderegister": ({"first_name": "Vorname", "last_name": "Nachname",
                       "birth_date": "Geburtsdatum", "street": "Strasse", "postcode": "PLZ",
                       "city": "Ort", "state": "Bundesland", "gender": "Geschlecht",
                       "tax_id": "SteuerID"}, "%d.%m.%Y", {"F": "weiblich", "M": "männlich"}),
    "kundenliste": ({"first_name": "first", "last_name": "last", "birth_date": "dob",
                     "street": "address", "postcode": "zip", "city": "town", "state": "state",
                     "gender": "sex", "tax_id": "tax_number"}, "%Y-%m-%d", {"F": "F", "M": "M"}),
}
TARGETS = {"first_name": "first_name", "last_name": "last_name", "birth_date": "birth_date",
           "street": "address_line1", "postcode": "postcode", "city": "city",
           "state": "region", "gender": "gender", "tax_id": "national_id"}

# The configuration docs/identity-matching.md recommends, as a new user would copy it.
RECOMMENDED_IDENTITY = """\
keys:
  - field: email
    max_names: 2
    first_names_must_agree: true
  - field: phone
    max_names: 2
    first_names_must_agree: true
  - field: national_id
    max_names: 2
probabilistic:
  comparisons:
    - {field: first_name, method: name}
    - {field: last_name, method: name}
    - {field: birth_date, method: date}
    - {field: postcode, method: postcode}
    - {field: address_line1, method: address}
    - {field: city, method: exact}
  blocking: auto
"""


def write_project(root: Path, n_people: int, seed: int = 7,
                  identity: str = RECOMMENDED_IDENTITY) -> Path:
    """A Passerelle project of the two lists; returns the truth CSV's path."""
    persons = people(n_people, seed)
    rows = records(persons, seed)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "sources").mkdir(exist_ok=True)
    (root / "passerelle.yml").write_text(textwrap.dedent("""\
        name: foreign
        timezone: Europe/Berlin
        default_region: DE
        identity_salt: ${PASSERELLE_TEST_SALT:-benchmark-salt-not-secret}
    """), encoding="utf-8")
    (root / "identity.yml").write_text(identity, encoding="utf-8")
    for source, (columns, date_format, words) in LIST_COLUMNS.items():
        mine = [r for r in rows if r["source"] == source]
        _write_csv(root / "data" / f"{source}.csv", mine, columns, date_format, words)
        mapping = "\n".join(
            f"  {TARGETS[f]}: {{column: {c}, format: '{date_format}'}}" if f == "birth_date"
            else f"  {TARGETS[f]}: {{column: {c}, hash: true}}" if f == "tax_id"
            else f"  {TARGETS[f]}: {c}" for f, c in columns.items())
        (root / "sources" / f"{source}.yml").write_text(
            f"entity: customers\nconnector: {{type: csv, path: data/{source}.csv}}\n"
            f"columns:\n  customer_id: id\n{mapping}\n", encoding="utf-8")
    truth = root / "truth.csv"
    with truth.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "source_id", "true_person_id"])
        for r in rows:
            writer.writerow([r["source"], r["id"], r["person"]])
    return truth
