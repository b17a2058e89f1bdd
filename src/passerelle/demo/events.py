"""Web and app events as a Segment-Spec JSON lines export, one file a month.

Visits (sessions) come from four places: browsing, e-shop orders (each ends with ``Order
Completed``), A/B test exposures (``Experiment Viewed``) and clicks in campaign e-mails or
text messages. A visit is logged in (``userId`` = e-shop customer id) only once the person
has an account; before that the device's ``anonymousId`` is all there is. Lines are built
column-wise with Arrow string kernels and written a chunk of people at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from passerelle.demo import textops as t
from passerelle.demo.activity import CAMPAIGNS, EXPERIMENTS, Assignments, Orders, Sends
from passerelle.demo.customers import CustomerSource
from passerelle.demo.people import DAY, YEAR, People
from passerelle.demo.pools import Pools

# (channel, utm_source, utm_medium, utm_campaign): the visit's origin.
UTMS: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    ("direct", None, None, None),
    ("organic", "google", "organic", None),
    ("search", "google", "cpc", "search_marque"),
    ("search", "google", "cpc", "search_generique"),
    ("social", "facebook", "paid_social", "social_prospection"),
    ("social", "instagram", "paid_social", "social_retargeting"),
    ("display", "criteo", "display", "display_notoriete"),
    ("affiliate", "igraal", "affiliate", "affiliation_cashback"),
    *((c.channel, "newsletter" if c.channel == "email" else "sms", c.channel, c.id)
      for c in CAMPAIGNS),
)
BROWSE_UTM = np.array([0.40, 0.25, 0.07, 0.08, 0.06, 0.04, 0.05, 0.05])
ORDER_UTM = np.array([0.33, 0.20, 0.10, 0.12, 0.06, 0.06, 0.05, 0.08])
PATHS = ("/", "/collections/linge-de-maison", "/collections/decoration", "/collections/mode-femme",
         "/collections/mode-homme", "/nouveautes", "/soldes", "/magasins")  # fmt: skip
CHUNK_PEOPLE = 20_000
BROWSE, ORDER, EXPOSURE, CLICK = 0, 1, 2, 3


@dataclass
class Sessions:
    person: np.ndarray
    time: np.ndarray  # seconds after the window start, local time
    kind: np.ndarray
    ref: np.ndarray  # order index (ORDER), assignment index (EXPOSURE), else -1
    utm: np.ndarray
    account: np.ndarray  # e-shop record of a logged-in visit, -1 when anonymous


def sessions(people: People, orders: Orders, sends: Sends, assign: Assignments,
             crm: CustomerSource, eshop_first: np.ndarray, weights: np.ndarray,
             seed: int) -> Sessions:
    rng = np.random.default_rng([seed, 30])
    active = np.nonzero(people.web_active)[0]
    per_year = rng.gamma(1.5, 2.0, len(active)) * np.where(people.in_eshop[active], 1.3, 0.7)
    b_person = np.repeat(active, rng.poisson(per_year))
    b_time = rng.choice(365, len(b_person), p=weights) * DAY + rng.integers(
        7 * 3600, 24 * 3600, len(b_person))
    web = np.nonzero(orders.web)[0]
    o_time = orders.time[web] - rng.integers(300, 1500, len(web))
    o_utm = np.where(orders.touch[web] >= 0, 8 + orders.touch[web],
                     rng.choice(8, len(web), p=ORDER_UTM))
    x_person = assign.exp_person
    clicked = np.nonzero((sends.clicked >= 0) & people.web_active[crm.person[sends.record]])[0]
    c_person = crm.person[sends.record[clicked]]
    person = np.concatenate([b_person, orders.person[web], x_person, c_person])
    time = np.concatenate([b_time, o_time, assign.exp_time, sends.clicked[clicked]])
    kind = np.concatenate([np.full(len(b_person), BROWSE), np.full(len(web), ORDER),
                           np.full(len(x_person), EXPOSURE), np.full(len(c_person), CLICK)])
    ref = np.concatenate([np.full(len(b_person), -1), web, np.arange(len(x_person)),
                          np.full(len(c_person), -1)])
    utm = np.concatenate([rng.choice(8, len(b_person), p=BROWSE_UTM), o_utm,
                          rng.choice(8, len(x_person), p=BROWSE_UTM),
                          8 + sends.campaign[clicked]])
    has_account = people.in_eshop[person] & (time >= people.eshop_since[person])
    logged = has_account & ((kind == ORDER) | (rng.random(len(person)) < 0.55))
    account = np.where(kind == ORDER, orders.account[np.maximum(ref, 0)],
                       eshop_first[person])
    account = np.where(logged, account, -1)
    time = np.clip(time, 0, YEAR - 1)
    order = np.lexsort((time, person))
    return Sessions(person[order], time[order], kind[order], ref[order], utm[order],
                    account[order])


def _utc_millis(origin: int, seconds: np.ndarray) -> np.ndarray:
    local = pd.DatetimeIndex((origin + seconds).astype("datetime64[s]"))
    utc = local.tz_localize("Europe/Paris", ambiguous=np.zeros(len(local), bool),
                            nonexistent="shift_forward").tz_convert("UTC").tz_localize(None)
    return utc.to_numpy().astype("datetime64[ms]").astype(np.int64)


def _expand(counts: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.repeat(np.arange(len(counts)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    within = np.arange(len(idx)) - np.repeat(starts, counts)
    return idx, np.full(len(idx), rank), within


def write_events(folder: Path, s: Sessions, people: People, pools: Pools, orders: Orders,
                 assign: Assignments, eshop: CustomerSource, origin: int, seed: int
                 ) -> tuple[int, set[str], np.ndarray, np.ndarray]:
    """Write ``events-YYYY-MM.jsonl`` files; return rows, file names and the ids used."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("events-*.jsonl"):
        old.unlink()
    j_products = t.json_pool(pools.products.to_pylist())
    j_categories = t.json_pool(pools.product_categories.to_pylist())
    product_ids = t.cat("PRD-", t.num(np.arange(len(pools.products)), 4))
    prices = t.euros(pools.product_cents, comma=False)
    j_paths = t.json_pool(PATHS)
    ctx = []
    for _channel, source, medium, name in UTMS:
        camp = (f',"campaign":{{"source":"{source}","medium":"{medium}","name":"{name}"}}'
                if name else "")
        ctx.append(f'{{"library":{{"name":"analytics.js"}}{camp}}}')
    utm_channel = pa.array([u[0] for u in UTMS])
    utm_campaign = t.json_str(pa.array([u[3] for u in UTMS]))
    ctx_pool = pa.array(ctx)
    starts = np.searchsorted(s.person, np.arange(0, people.n + CHUNK_PEOPLE, CHUNK_PEOPLE))
    rows, files = 0, set()
    used_dev, used_acct = [], []
    for ci in range(len(starts) - 1):
        a, b = starts[ci], starts[ci + 1]
        if a == b:
            continue
        rng = np.random.default_rng([seed, 31, ci])
        sl = slice(a, b)
        person, kind, ref = s.person[sl], s.kind[sl], s.ref[sl]
        logged = s.account[sl] >= 0
        n = b - a
        dev = people.dev_start[person] + (rng.random(n) * people.dev_count[person]).astype(
            np.int64)
        ident = logged & (rng.random(n) < 0.35)
        ident |= (kind == BROWSE) & ~logged & people.in_newsletter[person] & (
            rng.random(n) < 0.08)
        views = np.where(kind == ORDER, 1 + rng.integers(0, 3, n), 1 + rng.poisson(0.8, n))
        added = (kind == ORDER) | (rng.random(n) < 0.15)
        parts = [
            _expand(ident.astype(np.int64), 0), _expand(np.ones(n, np.int64), 1),
            _expand((kind == EXPOSURE).astype(np.int64), 2), _expand(views, 3),
            _expand(added.astype(np.int64), 4), _expand((kind == ORDER).astype(np.int64), 5),
        ]
        sess = np.concatenate([p[0] for p in parts])
        slot = np.concatenate([p[1] for p in parts])
        within = np.concatenate([p[2] for p in parts])
        offset = slot * 35 + within * 28 + rng.integers(0, 20, len(sess))
        offset = np.where(slot == 5, np.maximum(offset, 300), offset)  # checkout takes a while
        millis = _utc_millis(origin, s.time[sl])[sess] + offset * 1000 + rng.integers(
            0, 1000, len(sess))
        order_ = np.lexsort((slot, millis))
        sess, slot, millis = sess[order_], slot[order_], millis[order_]
        m = len(sess)
        p_of = person[sess]
        acct = s.account[sl][sess]
        user = t.json_str(t.null_where(acct < 0, t.take(eshop.ids, np.maximum(acct, 0))))
        anon = t.take(people.dev_ids, dev[sess])
        typ = np.select([slot == 0, slot == 1], [0, 1], 2)
        type_s = t.take(pa.array(['"identify"', '"page"', '"track"']), typ)
        names = ["null", "null", '"Experiment Viewed"', '"Product Viewed"', '"Product Added"',
                 '"Order Completed"']
        event_s = t.take(pa.array(names), slot)
        utm = s.utm[sl][sess]
        email_raw = t.take(people.email_used, p_of)
        email = t.where(slot == 0, t.json_str(email_raw), "null")
        traits = t.where(slot == 0, t.cat('{"email":', t.json_str(email_raw), "}"), "null")
        props = _properties(slot, ref[sess], rng, pools, orders, assign, j_products,
                            j_categories, product_ids, prices, j_paths, kind[sess])
        line = t.cat(
            '{"messageId":"', t.hex_ids(rng, m), '","type":', type_s, ',"event":', event_s,
            ',"userId":', user, ',"anonymousId":"', anon, '","timestamp":"',
            t.iso_ms_utc(millis), '","channel":"', t.take(utm_channel, utm),
            '","campaign":', t.take(utm_campaign, utm), ',"email":', email,
            ',"properties":', props, ',"context":', t.take(ctx_pool, utm),
            ',"traits":', traits, "}",
        )
        month = millis.astype("datetime64[ms]").astype("datetime64[M]")
        for mo in np.unique(month):
            sel = np.nonzero(month == mo)[0]
            name = f"events-{mo!s}.jsonl"
            t.write(folder / name, t.lines_bytes(line.take(pa.array(sel)), "\n"), append=True)
            files.add(name)
        rows += m
        used_dev.append(np.unique(dev[sess]))
        used_acct.append(np.unique(acct[acct >= 0]))
    devs = np.unique(np.concatenate(used_dev)) if used_dev else np.array([], np.int64)
    accts = np.unique(np.concatenate(used_acct)) if used_acct else np.array([], np.int64)
    return rows, files, devs, accts


def _properties(slot, ref, rng, pools, orders, assign, j_products, j_categories, product_ids,
                prices, j_paths, kind) -> pa.Array:
    m = len(slot)
    product = rng.choice(len(pools.product_cents), m, p=pools.product_weights)
    prod = t.cat('{"product_id":"', t.take(product_ids, product), '","name":',
                 t.take(j_products, product), ',"category":', t.take(j_categories, product),
                 ',"price":', t.take(prices, product), "}")
    path_idx = np.where(kind == ORDER, 0, rng.integers(0, len(PATHS), m))
    page = t.cat('{"path":', t.take(j_paths, path_idx), "}")
    order_idx = np.maximum(np.where(slot == 5, ref, 0), 0)
    done = t.cat('{"order_id":"', t.num(orders.web_id[order_idx]), '","total":',
                 t.euros(orders.cents[order_idx], comma=False), ',"currency":"EUR"}')
    a_idx = np.maximum(np.where(slot == 2, ref, 0), 0)
    exps = pa.array([e.id for e in EXPERIMENTS])
    exp_names = t.json_pool([e.name for e in EXPERIMENTS])
    e_of = assign.experiment[a_idx] if len(assign.experiment) else np.zeros(m, np.int64)
    treated = assign.exp_treated[a_idx] if len(assign.exp_treated) else np.zeros(m, bool)
    expv = t.cat('{"experiment_id":"', t.take(exps, e_of), '","experiment_name":',
                 t.take(exp_names, e_of), ',"variation_id":"',
                 t.where(treated, "treatment", "control"), '"}')
    code = np.select([slot == 0, slot == 1, slot == 2, slot == 5], [0, 1, 2, 4], 3)
    return t.choose(code, pa.array(np.full(m, "{}")), page, expv, prod, done)
