"""Customer-like sources (CRM, e-shop accounts, loyalty members, newsletter sign-ups) with noise.

Each source copies the true people of :mod:`people` the way that system would have
captured them: typos, nicknames, swapped names, missing fields, old addresses, other or
shared e-mail addresses, phone numbers in the formats people type, duplicates. The rates
are in :data:`NOISE` and ``docs/demo.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.demo import textops as t
from passerelle.demo.people import DAY, YEAR, People
from passerelle.demo.pools import STORES, Pools


@dataclass(frozen=True)
class SourceNoise:
    """Per-record probabilities of each kind of noise in one source."""

    typo: float = 0.0  # first or last name with one edit
    nickname: float = 0.0  # short form, among people whose first name has one
    swapped: float = 0.0  # first and last names swapped
    email_missing: float = 0.0
    email_case: float = 0.0  # upper-cased or capitalised
    email_other: float = 0.0  # their other address (other provider, older one)
    email_invalid: float = 0.0  # garbage: '@' missing, no domain suffix, a space
    phone_missing: float = 0.0  # on top of the 12% of people who never give one
    birth_missing: float = 0.0
    old_address: float = 0.0  # among people who moved: the record keeps the old one
    postcode_missing: float = 0.0
    duplicate: float = 0.0  # the person has a second record in the same source


NOISE: dict[str, SourceNoise] = {
    "crm_contacts": SourceNoise(
        typo=0.03, nickname=0.10, swapped=0.02, email_missing=0.05, email_case=0.04,
        email_other=0.05, email_invalid=0.003, phone_missing=0.10, birth_missing=0.20,
        old_address=0.5, postcode_missing=0.03, duplicate=0.02,
    ),
    "eshop_customers": SourceNoise(
        typo=0.02, nickname=0.15, swapped=0.01, email_case=0.01, email_other=0.12,
        birth_missing=0.40, duplicate=0.01,
    ),
    "loyalty_members": SourceNoise(
        typo=0.04, nickname=0.05, swapped=0.03, email_missing=0.25, email_case=0.08,
        email_other=0.05, email_invalid=0.01, phone_missing=0.05, birth_missing=0.10,
        old_address=0.6, postcode_missing=0.05, duplicate=0.005,
    ),
    "newsletter_signups": SourceNoise(
        typo=0.02, nickname=0.15, email_case=0.02, email_other=0.15, email_invalid=0.005,
        old_address=0.6, postcode_missing=0.10, duplicate=0.03,
    ),
}  # fmt: skip
IMPOSSIBLE_BIRTH_DATES = 0.002  # loyalty members born on 31/02 or 30/02 (till typing)


@dataclass
class CustomerSource:
    name: str
    person: np.ndarray  # true person of every record
    ids: pa.Array  # the value mapped to customer_id
    created: np.ndarray  # seconds from window start
    columns: dict[str, pa.Array] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


def _records(
    members: np.ndarray, since: np.ndarray, dup_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of a source sorted by creation, with duplicates created later."""
    idx = np.nonzero(members)[0]
    dups = idx[rng.random(len(idx)) < dup_rate]
    dup_created = np.maximum(since[dups], -YEAR) + rng.integers(30 * DAY, 400 * DAY, len(dups))
    person = np.concatenate([idx, dups])
    created = np.concatenate([since[idx], np.minimum(dup_created, YEAR - 2 * DAY)])
    is_dup = np.concatenate([np.zeros(len(idx), bool), np.ones(len(dups), bool)])
    order = np.argsort(created, kind="stable")
    return person[order], created[order], is_dup[order]


def _updated(created: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    start = np.maximum(created, 0)
    return start + (rng.random(len(created)) * (YEAR - DAY - start)).astype(np.int64)


def names(people: People, pools: Pools, person: np.ndarray, noise: SourceNoise,
          rng: np.random.Generator) -> tuple[pa.Array, pa.Array]:
    n = len(person)
    fidx = people.first[person]
    first = t.take(pools.first, fidx)
    last = t.take(pools.last, people.last[person])
    start = pools.nickname_of[fidx]
    nick = np.nonzero((start >= 0) & (rng.random(n) < noise.nickname))[0]
    pick = start[nick] + (rng.random(len(nick)) * pools.nick_counts[fidx[nick]]).astype(np.int64)
    first = t.apply(first, nick, t.take(pools.nick, pick))
    is_typo = rng.random(n) < noise.typo
    on_first = is_typo & (rng.random(n) < 0.4)
    on_first[nick] = False
    on_last = is_typo & ~on_first
    for which, mask in ((0, on_first), (1, on_last)):
        idx = np.nonzero(mask)[0]
        col = first if which == 0 else last
        col = t.apply(col, idx, t.typo(col.take(pa.array(idx)), rng))
        first, last = (col, last) if which == 0 else (first, col)
    swap = rng.random(n) < noise.swapped
    return t.where(swap, last, first), t.where(swap, first, last)


def emails(people: People, person: np.ndarray, noise: SourceNoise, rng: np.random.Generator,
           at_least_one_invalid: bool = False) -> pa.Array:
    n = len(person)
    base = t.take(people.email_used, person)
    mail = t.where(rng.random(n) < noise.email_other, t.take(people.alt_email, person), base)
    case = rng.random(n)
    mail = t.where(case < noise.email_case * 0.7, pc.utf8_upper(mail), mail)
    mail = t.where((case >= noise.email_case * 0.7) & (case < noise.email_case),
                   pc.utf8_capitalize(mail), mail)
    bad = rng.random(n) < noise.email_invalid
    if at_least_one_invalid and n and not bad.any():
        bad[n // 2] = True
    kind = rng.integers(0, 3, n)
    broken = t.choose(
        kind,
        pc.replace_substring(mail, "@", ""),
        pc.replace_substring_regex(mail, r"\.[a-z]+$", ""),
        pc.replace_substring(mail, "@", " @"),
    )
    mail = t.where(bad, broken, mail)
    return t.null_where(rng.random(n) < noise.email_missing, mail)


def addresses(people: People, pools: Pools, person: np.ndarray, noise: SourceNoise,
              rng: np.random.Generator) -> dict[str, pa.Array]:
    n = len(person)
    old = people.moved[person] & (rng.random(n) < noise.old_address)
    place = np.where(old, people.old_place[person], people.place[person])
    street = np.where(old, people.old_street[person], people.street[person])
    number = np.where(old, people.old_number[person], people.number[person])
    line2 = np.where(old, -1, people.line2[person])
    line1 = t.cat(t.num(number), t.take(pools.streets, street), sep=" ")
    complement = t.null_where(line2 < 0, t.take(pools.line2, np.maximum(line2, 0)))
    postcode = t.null_where(rng.random(n) < noise.postcode_missing,
                            t.take(pools.places_postcode, place))
    return {"line1": line1, "line2": complement, "postcode": postcode,
            "city": t.take(pools.places_city, place)}


def phones(people: People, person: np.ndarray, noise: SourceNoise,
           rng: np.random.Generator) -> pa.Array:
    n = len(person)
    style = rng.choice(5, n, p=[0.35, 0.2, 0.25, 0.12, 0.08])
    missing = ~people.has_phone[person] | (rng.random(n) < noise.phone_missing)
    return t.null_where(missing, t.phones(people.phone[person], style))


def _birth(people: People, person: np.ndarray, noise: SourceNoise, rng: np.random.Generator,
           fmt: str) -> pa.Array:
    days = people.birth[person].astype(np.int64) * DAY
    return t.null_where(rng.random(len(person)) < noise.birth_missing, t.strftime(days, fmt))


def crm(people: People, pools: Pools, origin: int, rng: np.random.Generator) -> CustomerSource:
    noise = NOISE["crm_contacts"]
    person, created, _ = _records(people.in_crm, people.crm_since, noise.duplicate, rng)
    n = len(person)
    ids = t.cat("CRM-", t.num(np.arange(1, n + 1), 6))
    first, last = names(people, pools, person, noise, rng)
    addr = addresses(people, pools, person, noise, rng)
    consent_email = rng.random(n) < 0.62
    consent_sms = rng.random(n) < 0.35
    mail = emails(people, person, noise, rng)
    phone = phones(people, person, noise, rng)
    updated = _updated(created, rng)
    iso = "%Y-%m-%dT%H:%M:%S"
    columns = {
        "contact_id": ids, "first_name": first, "last_name": last, "email": mail,
        "phone": phone, "birth_date": _birth(people, person, noise, rng, "%Y-%m-%d"),
        "street": addr["line1"], "street_2": addr["line2"], "postal_code": addr["postcode"],
        "city": addr["city"], "country": t.where(rng.random(n) < 0.1, "France", "FR"),
        "consent_email": t.where(consent_email, "true", "false"),
        "consent_sms": t.where(consent_sms, "true", "false"),
        "created_at": t.strftime(origin + created, iso),
        "updated_at": t.strftime(origin + updated, iso),
    }  # fmt: skip
    return CustomerSource("crm_contacts", person, ids, created, columns, {
        "consent_email": consent_email, "consent_sms": consent_sms, "email": mail, "phone": phone,
    })  # fmt: skip


def eshop(people: People, pools: Pools, origin: int, rng: np.random.Generator) -> CustomerSource:
    """PrestaShop ``ps_customer`` rows (typed: written to Parquet or MariaDB as they are)."""
    noise = NOISE["eshop_customers"]
    person, created, is_dup = _records(people.in_eshop, people.eshop_since, noise.duplicate, rng)
    n = len(person)
    first, last = names(people, pools, person, noise, rng)
    mail = emails(people, person, noise, rng)
    mail = t.where(is_dup, t.take(people.alt_email, person), mail)  # a second account
    birthday = pa.array(people.birth[person]).cast(pa.date32())
    birthday = pc.if_else(pa.array(rng.random(n) < noise.birth_missing),
                          pa.scalar(None, pa.date32()), birthday)
    updated = _updated(created, rng)
    newsletter = (rng.random(n) < 0.45).astype(np.int8)
    columns = {
        "id_customer": pa.array(np.arange(1, n + 1, dtype=np.int32)),
        "id_gender": pa.array(np.where(people.gender[person] == 1, 1, 2).astype(np.int8)),
        "firstname": first, "lastname": last, "email": mail, "birthday": birthday,
        "newsletter": pa.array(newsletter), "optin": pa.array((rng.random(n) < 0.2).astype(
            np.int8)), "active": pa.array(np.ones(n, np.int8)),
        "date_add": pa.array((origin + created).astype("datetime64[s]")),
        "date_upd": pa.array((origin + updated).astype("datetime64[s]")),
    }  # fmt: skip
    ids = t.num(np.arange(1, n + 1))
    return CustomerSource("eshop_customers", person, ids, created, columns, {"email": mail})


# PrestaShop's delivery addresses (``ps_address``): an account gets one at its first order.
ESHOP_ADDRESS_NOISE = SourceNoise(phone_missing=0.15, old_address=0.3)
ESHOP_NO_ADDRESS = 0.10  # accounts without an address (in a shop: never ordered)
ESHOP_ELSEWHERE = 0.05  # delivered to a workplace or a pick-up point, not home


def eshop_addresses(people: People, pools: Pools, eshop: CustomerSource, origin: int,
                    rng: np.random.Generator) -> pa.Table:
    """``ps_address`` rows, typed: one delivery address for most e-shop accounts, typed by
    the customer at checkout (an old address for some who moved, a workplace for a few),
    with the mobile phone the carrier asks for."""
    noise = ESHOP_ADDRESS_NOISE
    account = np.nonzero(rng.random(len(eshop.person)) >= ESHOP_NO_ADDRESS)[0]
    person = eshop.person[account]
    n = len(person)
    addr = addresses(people, pools, person, noise, rng)
    at_work = rng.random(n) < ESHOP_ELSEWHERE
    elsewhere = np.nonzero(at_work)[0]
    other = addresses(people, pools, rng.integers(0, people.n, len(elsewhere)), noise, rng)
    for key in ("line1", "line2", "postcode", "city"):
        addr[key] = t.apply(addr[key], elsewhere, other[key])
    created = np.maximum(eshop.created[account], 0) + rng.integers(0, 30 * DAY, n)
    created = np.minimum(created, YEAR - DAY)
    columns = {
        "id_address": pa.array(np.arange(1, n + 1, dtype=np.int32)),
        "id_customer": pa.array((account + 1).astype(np.int32)),
        "alias": t.where(at_work, "Bureau", "Mon adresse"),
        "firstname": eshop.columns["firstname"].take(pa.array(account)),
        "lastname": eshop.columns["lastname"].take(pa.array(account)),
        "address1": addr["line1"], "address2": addr["line2"], "postcode": addr["postcode"],
        "city": addr["city"], "phone": pa.nulls(n, pa.string()),
        "phone_mobile": phones(people, person, noise, rng),
        "deleted": pa.array(np.zeros(n, np.int8)),
        "date_add": pa.array((origin + created).astype("datetime64[s]")),
        "date_upd": pa.array((origin + created).astype("datetime64[s]")),
    }  # fmt: skip
    return pa.table(columns)


def loyalty(people: People, pools: Pools, origin: int, rng: np.random.Generator
            ) -> CustomerSource:
    """The till system's member export: French headers, upper-case surnames, dd/mm/yyyy."""
    noise = NOISE["loyalty_members"]
    person, created, _ = _records(people.in_loyalty, people.loyalty_since, noise.duplicate, rng)
    n = len(person)
    cards = t.cat("2940", t.num(10_000_000 + np.arange(n) * 3 + rng.integers(0, 3, n), 9))
    first, last = names(people, pools, person, noise, rng)
    last = t.where(rng.random(n) < 0.7, pc.utf8_upper(last), last)
    addr = addresses(people, pools, person, noise, rng)
    birth = _birth(people, person, noise, rng, "%d/%m/%Y")
    impossible = np.nonzero(rng.random(n) < IMPOSSIBLE_BIRTH_DATES)[0]
    if n and len(impossible) == 0:
        impossible = np.array([n // 3])
    year = people.birth[person[impossible]].astype("datetime64[Y]").astype(np.int64) + 1970
    day = np.where(rng.random(len(impossible)) < 0.5, "31", "30")
    birth = t.apply(birth, impossible, t.cat(pa.array(day), "02", t.num(year), sep="/"))
    store = np.where(rng.random(n) < 0.85, people.home_store[person],
                     rng.integers(0, len(STORES), n))
    updated = _updated(created, rng)
    columns = {
        "N° carte": cards,
        "Civilité": t.where(people.gender[person] == 1, "M.", "Mme"),
        "Nom": last, "Prénom": first, "Date de naissance": birth,
        "Adresse": addr["line1"], "Complément": addr["line2"], "Code postal": addr["postcode"],
        "Ville": pc.utf8_upper(addr["city"]),
        "Téléphone": phones(people, person, noise, rng),
        "E-mail": emails(people, person, noise, rng, at_least_one_invalid=True),
        "Magasin": t.take(pa.array([s[0] for s in STORES]), store),
        "Date d'adhésion": t.strftime(origin + created, "%d/%m/%Y"),
        "Optin e-mail": t.where(rng.random(n) < 0.55, "oui", "non"),
        "Optin SMS": t.where(rng.random(n) < 0.4, "oui", "non"),
        "Dernière modification": t.strftime(origin + updated, "%d/%m/%Y %H:%M"),
    }  # fmt: skip
    return CustomerSource("loyalty_members", person, cards, created, columns)


def newsletter(people: People, pools: Pools, origin: int, rng: np.random.Generator
               ) -> CustomerSource:
    """The e-mailing tool's contact export: one row a sign-up (people sign up twice)."""
    noise = NOISE["newsletter_signups"]
    person, created, _ = _records(people.in_newsletter, people.newsletter_since,
                                  noise.duplicate, rng)
    n = len(person)
    ids = t.num(100_000 + np.arange(n) * 7 + rng.integers(0, 7, n))
    first, _ = names(people, pools, person, noise, rng)
    first = t.null_where(rng.random(n) < 0.15, first)
    addr = addresses(people, pools, person, noise, rng)
    columns = {
        "ID contact": ids,
        "E-mail": emails(people, person, noise, rng, at_least_one_invalid=True),
        "Prénom": first, "Code postal": addr["postcode"],
        "Date d'inscription": t.strftime(origin + created, "%d/%m/%Y"),
        "Consentement": t.where(rng.random(n) < 0.93, "oui", "non"),
        "Source": t.take(pa.array(["site", "magasin", "jeu-concours", "caisse"]),
                         rng.choice(4, n, p=[0.55, 0.2, 0.15, 0.1])),
    }  # fmt: skip
    return CustomerSource("newsletter_signups", person, ids, created, columns)
