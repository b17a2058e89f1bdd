"""What people buy, which campaigns reach them and which tests they see: planted effects.

Purchases follow a Poisson process per person (rate drawn from a gamma, a weekly and
seasonal calendar). Campaigns and A/B tests then *add* purchases to treated people so
that their conversion probability in the 14-day window is exactly ``(1 + lift)`` times
the baseline: for a treated person without a baseline purchase in the window, one is
added with probability ``q = p0 * lift / (1 - p0)`` where ``p0`` is that person's
baseline probability. Campaign and test windows never overlap, so effects do not mix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from passerelle.demo.customers import CustomerSource
from passerelle.demo.people import DAY, YEAR, People
from passerelle.demo.pools import STORES, Pools

WINDOW_DAYS = 14


@dataclass(frozen=True)
class Campaign:
    id: str
    channel: str  # email or sms
    day: int  # days after the window start
    lift: float
    description: str


@dataclass(frozen=True)
class Experiment:
    id: str
    name: str
    start_day: int
    end_day: int
    lift: float
    description: str


CAMPAIGNS = (
    Campaign("email_nouvelle_collection", "email", 200, 0.15,
             "E-mail: the new home collection, to opted-in CRM contacts"),
    Campaign("sms_week_end_maison", "sms", 230, 0.0,
             "SMS: a weekend offer on home goods (no effect planted)"),
    Campaign("email_ventes_privees", "email", 260, 0.08,
             "E-mail: private sales invitation"),
    Campaign("email_relance_inactifs", "email", 290, 0.10,
             "E-mail: win-back of contacts who had not bought for a while"),
)  # fmt: skip
EXPERIMENTS = (
    Experiment("checkout_express", "Paiement express", 60, 100, 0.10,
               "One-page express checkout on the e-shop"),
    Experiment("homepage_hero", "Bannière d'accueil", 120, 160, 0.0,
               "New homepage banner (no effect planted)"),
)  # fmt: skip
HOLDOUT = 0.10


@dataclass
class Orders:
    person: np.ndarray
    time: np.ndarray  # seconds after the window start (local time)
    web: np.ndarray  # e-shop order, else store ticket
    store: np.ndarray
    card: np.ndarray  # loyalty record index scanned at the till, -1 for none
    account: np.ndarray  # e-shop record index, -1 for store tickets
    touch: np.ndarray  # campaign index whose e-mail led to the visit, -1 for none
    line_order: np.ndarray  # order index of every line
    product: np.ndarray
    quantity: np.ndarray
    cents: np.ndarray  # order total
    web_id: np.ndarray | None = None  # id_order of e-shop orders (set when written)


@dataclass
class Sends:
    record: np.ndarray  # CRM record index
    campaign: np.ndarray
    sent: np.ndarray
    opened: np.ndarray  # -1 for never
    clicked: np.ndarray


@dataclass
class Assignments:
    """Who was in which arm: written to the truth folder."""

    campaign_person: np.ndarray
    campaign: np.ndarray
    campaign_treated: np.ndarray
    exp_person: np.ndarray
    experiment: np.ndarray
    exp_treated: np.ndarray
    exp_time: np.ndarray  # first exposure


def day_weights(origin_weekday: int, origin_month_days: np.ndarray) -> np.ndarray:
    """Relative activity per day of the window: Saturdays and December are busy."""
    weekday = (origin_weekday + np.arange(365)) % 7
    w = np.array([1.0, 0.9, 0.9, 1.0, 1.15, 1.5, 0.75])[weekday]
    month = origin_month_days  # month number (1-12) of every day of the window
    w = w * np.where(month == 12, 1.6, 1.0) * np.where(month == 11, 1.25, 1.0)
    w = w * np.where((month == 1) | (month == 7), 1.2, 1.0)  # sales
    return w / w.sum()


def _times(days: np.ndarray, web: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hour = np.where(web, rng.normal(19, 3.5, len(days)), rng.uniform(10, 19.5, len(days)))
    seconds = (np.clip(hour, 7, 23.9) * 3600).astype(np.int64)
    return days * DAY + seconds


@dataclass
class _Owners:
    """Which e-shop account / loyalty card a person uses at a given time."""

    first: np.ndarray  # the person's earliest record, -1 for none
    second: np.ndarray  # a later duplicate record, -1 for none
    second_from: np.ndarray
    rng: np.random.Generator

    def pick(self, person: np.ndarray, time: np.ndarray) -> np.ndarray:
        alt = (self.second[person] >= 0) & (time >= self.second_from[person])
        alt &= self.rng.random(len(person)) < 0.5
        return np.where(alt, self.second[person], self.first[person])


def owners(source: CustomerSource, n: int, rng: np.random.Generator) -> _Owners:
    first = np.full(n, -1)
    second = np.full(n, -1)
    rev = np.arange(len(source.person))[::-1]
    first[source.person[rev]] = rev  # the last write wins: the earliest record
    taken = np.zeros(len(source.person), dtype=bool)
    taken[first[first >= 0]] = True
    second[source.person[~taken]] = np.nonzero(~taken)[0]
    second_from = np.where(second >= 0, source.created[np.maximum(second, 0)], 0)
    return _Owners(first, second, second_from, rng)


def simulate(people: People, pools: Pools, crm: CustomerSource, eshop: CustomerSource,
             loyalty: CustomerSource, weights: np.ndarray, seed: int
             ) -> tuple[Orders, Sends, Assignments]:
    rng = np.random.default_rng([seed, 20])
    n = people.n
    counts = rng.poisson(people.rate)
    person = np.repeat(np.arange(n), counts)
    days = rng.choice(365, len(person), p=weights)
    can_web = people.in_eshop[person] & (days * DAY >= people.eshop_since[person])
    base_web = can_web & (rng.random(len(person)) < people.web_share[person])
    base_time = _times(days, base_web, rng)
    cum = np.concatenate([[0], np.cumsum(weights)])

    def frac(start: np.ndarray, length: float = WINDOW_DAYS) -> np.ndarray:
        d = np.clip(start / DAY, 0, 365)
        e = np.clip(d + length, 0, 365)
        return np.interp(e, np.arange(366), cum) - np.interp(d, np.arange(366), cum)

    extra_person, extra_time, extra_touch, extra_web = [], [], [], []
    c_person, c_id, c_treat = [], [], []
    s_rec, s_camp, s_sent = [], [], []
    for ci, camp in enumerate(CAMPAIGNS):
        ok = (crm.extra["consent_email"] & ~_isnull(crm.extra["email"])) if camp.channel == \
            "email" else (crm.extra["consent_sms"] & ~_isnull(crm.extra["phone"]))
        ok &= crm.created < camp.day * DAY
        audience = np.unique(crm.person[ok])
        treated = rng.random(len(audience)) >= HOLDOUT
        c_person.append(audience)
        c_id.append(np.full(len(audience), ci))
        c_treat.append(treated)
        is_treated = np.zeros(n, dtype=bool)
        is_treated[audience[treated]] = True
        recs = np.nonzero(ok & is_treated[crm.person])[0]
        sent = camp.day * DAY + 9 * 3600 + rng.integers(0, 7200, len(recs))
        s_rec.append(recs)
        s_camp.append(np.full(len(recs), ci))
        s_sent.append(sent)
        start = camp.day * DAY + 9 * 3600
        who = audience[treated]
        p0 = 1 - np.exp(-people.rate[who] * frac(np.full(len(who), start)))
        extra = _lift(person, base_time, None, who, np.full(len(who), start), p0, camp.lift, rng)
        extra_person.append(extra)
        extra_time.append(start + rng.integers(3 * 3600, WINDOW_DAYS * DAY, len(extra)))
        extra_touch.append(np.full(len(extra), ci))
        extra_web.append(np.zeros(len(extra), dtype=bool))

    e_person, e_id, e_treat, e_time = [], [], [], []
    for ei, exp in enumerate(EXPERIMENTS):
        eligible = np.nonzero(people.in_eshop & people.web_active
                              & (people.eshop_since < exp.start_day * DAY))[0]
        exposed = eligible[rng.random(len(eligible)) < 0.7]
        when = rng.integers(exp.start_day * DAY, exp.end_day * DAY, len(exposed))
        treated = rng.random(len(exposed)) < 0.5
        e_person.append(exposed)
        e_id.append(np.full(len(exposed), ei))
        e_treat.append(treated)
        e_time.append(when)
        who, start = exposed[treated], when[treated]
        p0 = 1 - np.exp(-people.rate[who] * people.web_share[who] * frac(start))
        extra = _lift(person, base_time, base_web, who, start, p0, exp.lift, rng)
        idx = np.searchsorted(exposed[treated], extra) if len(extra) else extra
        extra_person.append(extra)
        extra_time.append(when[treated][idx] + rng.integers(60, WINDOW_DAYS * DAY, len(extra)))
        extra_touch.append(np.full(len(extra), -1))
        extra_web.append(np.ones(len(extra), dtype=bool))

    ep = np.concatenate(extra_person).astype(np.int64)
    et = np.minimum(np.concatenate(extra_time), YEAR - 60)
    forced = np.concatenate(extra_web)
    extra_can = people.in_eshop[ep] & (et >= people.eshop_since[ep])
    extra_web_ = forced | (extra_can & (rng.random(len(ep)) < people.web_share[ep]))
    person = np.concatenate([person, ep])
    time = np.concatenate([base_time, et])
    web = np.concatenate([base_web, extra_web_])
    touch = np.concatenate([np.full(len(base_time), -1), np.concatenate(extra_touch)])
    order = np.lexsort((person, time))
    person, time, touch, web = person[order], time[order], touch[order], web[order]
    touch = np.where(web & (rng.random(len(person)) < 0.6), touch, -1)
    store = np.where(rng.random(len(person)) < 0.85, people.home_store[person],
                     rng.integers(0, len(STORES), len(person)))
    loyal = owners(loyalty, n, rng)
    card_ok = (loyal.first[person] >= 0) & (time >= people.loyalty_since[person])
    card = np.where(~web & card_ok & (rng.random(len(person)) < 0.8),
                    loyal.pick(person, time), -1)
    account = np.where(web, owners(eshop, n, rng).pick(person, time), -1)

    n_lines = np.minimum(1 + rng.poisson(0.7, len(person)), 6)
    line_order = np.repeat(np.arange(len(person)), n_lines)
    product = rng.choice(len(pools.product_cents), len(line_order), p=pools.product_weights)
    quantity = rng.choice([1, 2, 3], len(line_order), p=[0.85, 0.12, 0.03])
    cents = np.bincount(line_order, pools.product_cents[product] * quantity,
                        minlength=len(person)).astype(np.int64)
    cents += np.where(web & (cents < 6000), 490, 0)  # shipping
    orders = Orders(person, time, web, store, card, account, touch, line_order, product,
                    quantity, cents)

    recs = np.concatenate(s_rec)
    sent = np.concatenate(s_sent)
    is_email = np.isin(np.concatenate(s_camp),
                       [i for i, c in enumerate(CAMPAIGNS) if c.channel == "email"])
    opened = np.where(is_email & (rng.random(len(recs)) < 0.32),
                      sent + rng.exponential(4 * 3600, len(recs)).astype(np.int64), -1)
    click_p = np.where(is_email, 0.18 * (opened >= 0), 0.04)
    clicked = np.where(rng.random(len(recs)) < click_p,
                       np.maximum(opened, sent) + rng.integers(5, 1800, len(recs)), -1)
    sends = Sends(recs, np.concatenate(s_camp), sent, opened, clicked)
    assign = Assignments(np.concatenate(c_person), np.concatenate(c_id), np.concatenate(c_treat),
                         np.concatenate(e_person), np.concatenate(e_id),
                         np.concatenate(e_treat), np.concatenate(e_time))
    return orders, sends, assign


def _isnull(values) -> np.ndarray:
    return values.is_null().to_numpy(zero_copy_only=False)


def _lift(person: np.ndarray, time: np.ndarray, counts: np.ndarray | None,
          treated: np.ndarray, start: np.ndarray, p0: np.ndarray, lift: float,
          rng: np.random.Generator) -> np.ndarray:
    """Treated people (sorted) who get an added purchase in their 14-day window.

    ``counts`` marks the baseline purchases that count as a conversion (None: all).
    """
    if lift == 0 or len(treated) == 0:
        return np.array([], dtype=np.int64)
    pos = np.searchsorted(treated, person)
    inside = pos < len(treated)
    inside[inside] &= treated[pos[inside]] == person[inside]
    t0 = start[np.minimum(pos, len(treated) - 1)]
    hit = inside & (time >= t0) & (time < t0 + WINDOW_DAYS * DAY)
    if counts is not None:
        hit &= counts
    converted = np.zeros(len(treated), dtype=bool)
    converted[pos[hit]] = True
    q = np.clip(p0 * lift / np.maximum(1 - p0, 1e-9), 0, 1)
    return treated[~converted & (rng.random(len(treated)) < q)]
