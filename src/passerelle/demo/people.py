"""The true people behind the demo: who they are, where they live, which systems know them.

Everything here is ground truth. Sources copy these values with noise; ``truth/persons.csv``
writes them as they really are, so identity resolution and golden records can be scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from passerelle.demo import textops as t
from passerelle.demo.pools import STORES, Pools

DAY = 86_400
YEAR = 365 * DAY


@dataclass
class People:
    n: int
    gender: np.ndarray
    first: np.ndarray  # index into pools.first
    last: np.ndarray  # index into pools.last
    birth: np.ndarray  # datetime64[D]
    place: np.ndarray  # index into pools.places_*
    street: np.ndarray
    number: np.ndarray
    line2: np.ndarray  # index into pools.line2, -1 for none
    moved: np.ndarray
    old_place: np.ndarray
    old_street: np.ndarray
    old_number: np.ndarray
    phone: np.ndarray  # 9 digits after the leading 0
    has_phone: np.ndarray
    email: pa.Array  # own main address
    alt_email: pa.Array  # another address they also use (other provider, older one)
    email_used: pa.Array  # what they give to shops: their own, or their partner's
    partner: np.ndarray  # -1 when single
    household: np.ndarray
    rate: np.ndarray  # orders a year
    web_share: np.ndarray  # share of orders placed online once they have an account
    in_crm: np.ndarray
    in_eshop: np.ndarray
    in_loyalty: np.ndarray
    in_newsletter: np.ndarray
    web_active: np.ndarray
    eshop_since: np.ndarray  # seconds from window start (negative: before the window)
    loyalty_since: np.ndarray
    newsletter_since: np.ndarray
    crm_since: np.ndarray
    home_store: np.ndarray
    dev_start: np.ndarray  # first device of the person in ``dev_ids``
    dev_count: np.ndarray
    dev_ids: pa.Array  # anonymousId of every device


def _emails(pools: Pools, first: np.ndarray, last: np.ndarray, birth_year: np.ndarray,
            pattern: np.ndarray, provider: np.ndarray) -> pa.Array:
    f = t.take(pools.first_ascii, first)
    ln = t.take(pools.last_ascii, last)
    yy = t.num(birth_year % 100, 2)
    initial = pc.utf8_slice_codeunits(f, 0, 1)
    local = t.choose(
        pattern,
        t.cat(f, ln, sep="."),
        t.cat(f, ln),
        t.cat(f, ln, sep="_"),
        t.cat(f, ".", ln, yy),
        t.cat(initial, ln),
        t.cat(ln, f, sep="."),
        t.cat(f, yy),
    )
    return t.cat(local, "@", t.take(pools.providers, provider))


def _dedupe(emails: pa.Array, taken: pa.Array | None = None) -> pa.Array:
    """Make every address unique (an address belongs to one account holder)."""
    values = emails.to_numpy(zero_copy_only=False).astype(object)
    pool = pd.Series(values if taken is None else np.concatenate(
        [taken.to_numpy(zero_copy_only=False).astype(object), values]))
    dup = pool.duplicated().to_numpy()[len(pool) - len(values):]
    idx = np.nonzero(dup)[0]
    if len(idx):
        local_domain = pd.Series(values[idx]).str.split("@", n=1, expand=True)
        fixed = local_domain[0] + "." + pd.Series(idx).astype(str) + "@" + local_domain[1]
        values[idx] = fixed.to_numpy()
    return pa.array(values, pa.string())


def _adult_ages(rng: np.random.Generator, again: np.random.Generator, n: int) -> np.ndarray:
    """Ages in years, normal around 44 and kept between 18 and 88 by drawing again (from
    ``again``, so the rest of the demo draws what it drew before).

    Clipping would put the 3 % of draws under 18 on one birth date (2007-01-02), which
    strangers would then share: identity matching would see a birth date that says little.
    """
    ages = rng.normal(44, 14, n)
    outside = np.nonzero((ages < 18) | (ages > 88))[0]
    while len(outside):
        ages[outside] = again.normal(44, 14, len(outside))
        outside = outside[(ages[outside] < 18) | (ages[outside] > 88)]
    return ages


def make_people(n: int, pools: Pools, seed: int) -> People:
    rng = np.random.default_rng([seed, 10])
    gender = (rng.random(n) < 0.45).astype(np.int8)  # the retailer's clientele: 55% women
    first = np.empty(n, dtype=np.int64)
    for g in (0, 1):
        ids = np.nonzero(pools.first_gender == g)[0]
        mask = gender == g
        first[mask] = rng.choice(ids, mask.sum(), p=pools.first_weights[ids])
    last = rng.choice(len(pools.last), n, p=pools.last_weights)
    age_days = (_adult_ages(rng, np.random.default_rng([seed, 12]), n) * 365.25).astype(np.int64)
    birth = (np.datetime64("2025-01-01") - age_days).astype("datetime64[D]")
    place = rng.choice(len(pools.places_weights), n, p=pools.places_weights)
    street = rng.integers(0, len(pools.streets), n)
    number = rng.integers(1, 140, n)
    line2 = np.where(rng.random(n) < 0.12, rng.integers(0, len(pools.line2), n), -1)
    moved = rng.random(n) < 0.10
    old_place = np.where(rng.random(n) < 0.4, place,
                         rng.choice(len(pools.places_weights), n, p=pools.places_weights))
    old_street = rng.integers(0, len(pools.streets), n)
    old_number = rng.integers(1, 140, n)
    # two-digit mobile prefixes that phonenumbers (the staging authority) calls valid
    prefixes = np.array([60, 61, 62, 64, 65, 66, 67, 68, 73, 74, 75, 76, 77, 78, 79])
    weights = np.where(prefixes < 70, 3.0, 1.0)
    phone = rng.choice(prefixes, n, p=weights / weights.sum()) * 10_000_000 + rng.integers(
        0, 10_000_000, n)
    has_phone = rng.random(n) < 0.88

    # Households: couples share an address and (mostly) a last name, yet are two people.
    partner = np.full(n, -1, dtype=np.int64)
    in_couple = rng.permutation(n)[: int(n * 0.16) // 2 * 2]
    a, b = in_couple[0::2], in_couple[1::2]
    partner[a], partner[b] = b, a
    last[b] = np.where(rng.random(len(b)) < 0.85, last[a], last[b])
    for arr_ in (place, street, number, line2, moved, old_place, old_street, old_number):
        arr_[b] = arr_[a]
    household = np.arange(n)
    household[b] = a

    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    pattern = rng.choice(7, n, p=[0.36, 0.1, 0.05, 0.17, 0.15, 0.1, 0.07])
    provider = rng.choice(len(pools.provider_weights), n, p=pools.provider_weights)
    email = _dedupe(_emails(pools, first, last, year, pattern, provider))
    alt_provider = (provider + rng.integers(1, len(pools.provider_weights), n)) % len(
        pools.provider_weights)
    alt = _emails(pools, first, last, year, (pattern + rng.integers(1, 7, n)) % 7, alt_provider)
    alt_email = _dedupe(alt, taken=email)
    shares = np.zeros(n, dtype=bool)
    shares[b] = rng.random(len(b)) < 0.30  # one shared family address for the couple
    owner = np.where(shares, partner, np.arange(n))
    email_used = t.take(email, owner)

    u = rng.random(n)  # 0: store person, 1: web person
    rate = rng.gamma(0.9, 4.5 / 0.9, n)
    web_share = np.clip(0.25 + 0.7 * u + rng.normal(0, 0.1, n), 0.05, 0.97)
    in_eshop = rng.random(n) < 0.2 + 0.6 * u
    in_loyalty = rng.random(n) < 0.1 + 0.6 * (1 - u)
    in_crm = rng.random(n) < 0.70
    in_newsletter = rng.random(n) < 0.30
    web_active = in_eshop | (rng.random(n) < 0.6)

    def since(before: float) -> np.ndarray:
        """Account dates: ``before`` of them older than the window, the rest during it."""
        old = rng.random(n) < before
        return np.where(old, -rng.integers(DAY, 8 * YEAR, n), rng.integers(0, YEAR - DAY, n))

    store_city = np.array([s[2] for s in STORES])
    from passerelle.demo.pools import CITIES

    city_name = np.array([c[0] for c in CITIES])[pools.places_city_idx[place]]
    local = (store_city[None, :] == city_name[:, None])
    nearest = np.where(local.any(axis=1), local.argmax(axis=1), -1)
    home_store = np.where(nearest >= 0, nearest, rng.integers(0, len(STORES), n))

    dev_count = np.where(web_active, 1 + (rng.random(n) < 0.3), 0)
    dev_start = np.concatenate([[0], np.cumsum(dev_count)[:-1]])
    dev_ids = t.hex_ids(np.random.default_rng([seed, 11]), int(dev_count.sum()))
    return People(
        n=n, gender=gender, first=first, last=last, birth=birth, place=place, street=street,
        number=number, line2=line2, moved=moved, old_place=old_place, old_street=old_street,
        old_number=old_number, phone=phone, has_phone=has_phone, email=email,
        alt_email=alt_email, email_used=email_used, partner=partner, household=household,
        rate=rate, web_share=web_share, in_crm=in_crm, in_eshop=in_eshop,
        in_loyalty=in_loyalty, in_newsletter=in_newsletter, web_active=web_active,
        eshop_since=since(0.7), loyalty_since=since(0.75), newsletter_since=since(0.6),
        crm_since=since(0.8), home_store=home_store, dev_start=dev_start,
        dev_count=dev_count, dev_ids=dev_ids,
    )


def person_ids(idx: np.ndarray) -> pa.Array:
    return t.cat("P", t.num(np.asarray(idx) + 1, 7))
