"""Orders, till tickets, marketing files and the ground truth, as the systems export them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from passerelle.demo import textops as t
from passerelle.demo.activity import CAMPAIGNS, EXPERIMENTS, HOLDOUT, Assignments, Orders, Sends
from passerelle.demo.customers import CustomerSource
from passerelle.demo.events import UTMS
from passerelle.demo.people import DAY, YEAR, People, person_ids
from passerelle.demo.pools import STORES, Pools

TICKET_CHUNK = 500_000


def eshop_tables(orders: Orders, eshop: CustomerSource, addresses: pa.Table, pools: Pools,
                 origin: int, rng: np.random.Generator) -> dict[str, pa.Table]:
    """PrestaShop's ``ps_customer``, ``ps_address``, ``ps_orders`` and ``ps_order_detail``,
    typed."""
    web = np.nonzero(orders.web)[0]  # already sorted by time
    k = len(web)
    web_id = np.full(len(orders.person), -1, dtype=np.int64)
    web_id[web] = np.arange(1, k + 1)
    orders.web_id = web_id
    letters = (rng.integers(0, 26, (k, 9)) + 65).astype(np.uint8)
    reference = pa.array(letters.view("S9").ravel().astype(str))
    age = YEAR - orders.time[web]
    state = np.where(age < 2 * DAY, 2, np.where(age < 5 * DAY, 4, 5))
    r = rng.random(k)
    state = np.where(r < 0.03, 6, np.where(r < 0.06, 7, state))
    upd = np.minimum(orders.time[web] + rng.integers(600, 5 * DAY, k), YEAR - 1)
    upd = np.where(state == 2, orders.time[web], upd)
    ps_orders = pa.table({
        "id_order": pa.array(web_id[web].astype(np.int32)),
        "reference": reference,
        "id_customer": pa.array((orders.account[web] + 1).astype(np.int32)),
        "total_paid_tax_incl": _money(orders.cents[web]),
        "current_state": pa.array(state.astype(np.int32)),
        "date_add": pa.array((origin + orders.time[web]).astype("datetime64[s]")),
        "date_upd": pa.array((origin + upd).astype("datetime64[s]")),
    })
    lines = np.nonzero(orders.web[orders.line_order])[0]
    product = orders.product[lines]
    qty = orders.quantity[lines]
    unit = pools.product_cents[product]
    detail = pa.table({
        "id_order_detail": pa.array(np.arange(1, len(lines) + 1, dtype=np.int32)),
        "id_order": pa.array(web_id[orders.line_order[lines]].astype(np.int32)),
        "product_id": pa.array((product + 1).astype(np.int32)),
        "product_name": t.take(pools.products, product),
        "product_quantity": pa.array(qty.astype(np.int32)),
        "unit_price_tax_incl": _money(unit),
        "total_price_tax_incl": _money(unit * qty),
        "category_name": t.take(pools.product_categories, product),
    })
    return {"ps_customer": pa.table(eshop.columns), "ps_address": addresses,
            "ps_orders": ps_orders, "ps_order_detail": detail}


def customers_with_address(tables: dict[str, pa.Table]) -> pa.Table:
    """Each account with its latest delivery address, for the Parquet export of the demo:
    the rows of the MariaDB view ``passerelle_customers``, by the view's own query."""
    import duckdb

    from passerelle.demo.eshop_mysql import CUSTOMERS_VIEW

    con = duckdb.connect()
    for name in ("ps_customer", "ps_address"):
        con.register(name, tables[name])
    return con.execute(f"{CUSTOMERS_VIEW} ORDER BY c.id_customer").fetch_arrow_table()


def _money(cents: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(cents) / 100.0).cast(pa.decimal128(20, 6))


def write_tickets(path: Path, orders: Orders, loyalty: CustomerSource, origin: int,
                  rng: np.random.Generator) -> int:
    """The till export: cp1252, ``;``, decimal commas, a few broken lines as in real life."""
    store = np.nonzero(~orders.web)[0]
    items = np.bincount(orders.line_order, orders.quantity, minlength=len(orders.person))
    codes = pa.array([s[0] for s in STORES])
    total = 0
    for c0 in range(0, max(len(store), 1), TICKET_CHUNK):
        idx = store[c0 : c0 + TICKET_CHUNK]
        n = len(idx)
        till = rng.integers(1, 5, n)
        number = t.cat(t.num(orders.store[idx] + 1, 3), t.num(till, 2),
                       t.num(c0 + np.arange(n) + 1, 7), sep="-")
        if c0 == 0 and n > 10:
            number = t.apply(number, np.array([n // 4, n // 2]), pa.array([None, ""],
                                                                           pa.string()))
        card = orders.card[idx]
        cols = {
            "N° ticket": number,
            "Date": t.strftime(origin + orders.time[idx], "%d/%m/%Y %H:%M"),
            "Magasin": t.take(codes, orders.store[idx]),
            "Caisse": t.num(till),
            "N° carte fidélité": t.null_where(card < 0, t.take(loyalty.ids,
                                                                np.maximum(card, 0))),
            "Nb articles": t.num(items[idx]),
            "Montant TTC": t.euros(orders.cents[idx], comma=True),
            "Mode de paiement": t.take(pa.array(["CB", "CB sans contact", "Espèces", "Chèque",
                                                 "Carte cadeau"]),
                                       rng.choice(5, n, p=[0.45, 0.35, 0.12, 0.03, 0.05])),
        }
        data = t.csv_bytes(cols, ";", "cp1252", "\r\n", header=c0 == 0)
        if c0 == 0 and n > 10:
            data = _insert_line(data, n // 3, _malformed_line(cols, n // 3))
        t.write(path, data, append=c0 > 0)
        total += n
    return total


def _malformed_line(cols: dict[str, pa.Array], i: int) -> bytes:
    """A ticket with one field too many (a discount label typed with a separator)."""
    values = [("" if v[i].as_py() is None else v[i].as_py()) for v in cols.values()]
    values[0] = values[0][:-1] + "X"
    return (";".join(values) + ";REMISE 10%\r\n").encode("cp1252")


def _insert_line(data: bytes, after: int, line: bytes) -> bytes:
    pos = 0
    for _ in range(after + 1):  # header + ``after`` rows
        pos = data.index(b"\n", pos) + 1
    return data[:pos] + line + data[pos:]


def ad_spend(size: int, origin: int, weekday0: int, rng: np.random.Generator) -> dict:
    """Daily spend, impressions and clicks of the paid campaigns, scaled to the audience."""
    paid = [u for u in UTMS[2:8]]
    base = np.array([120, 260, 180, 90, 110, 70], float) * max(size, 1000) / 100_000
    cpm = np.array([25.0, 18.0, 6.0, 9.0, 2.5, 4.0])
    ctr = np.array([0.09, 0.04, 0.012, 0.02, 0.004, 0.01])
    days = np.repeat(np.arange(365), len(paid))
    camp = np.tile(np.arange(len(paid)), 365)
    weekly = np.array([1.0, 1.0, 1.0, 1.05, 1.1, 1.25, 1.2])[(weekday0 + days) % 7]
    spend = base[camp] * weekly * rng.lognormal(0, 0.2, len(days))
    cents = np.maximum(np.round(spend * 100).astype(np.int64), 1)
    impressions = rng.poisson(spend / cpm[camp] * 1000)
    clicks = rng.binomial(impressions, ctr[camp])
    return {
        "date": t.strftime(origin + days * DAY, "%Y-%m-%d"),
        "channel": t.take(pa.array([p[0] for p in paid]), camp),
        "campaign_id": t.take(pa.array([p[3] for p in paid]), camp),
        "spend": t.euros(cents, comma=False),
        "currency": pa.array(np.full(len(days), "EUR")),
        "impressions": t.num(impressions),
        "clicks": t.num(clicks),
    }


def campaign_sends(sends: Sends, crm: CustomerSource, origin: int) -> dict:
    iso = "%Y-%m-%dT%H:%M:%S"
    rec = sends.record
    is_sms = np.array([c.channel == "sms" for c in CAMPAIGNS])[sends.campaign]
    order = np.lexsort((rec, sends.sent))

    def ts(v: np.ndarray) -> pa.Array:
        return t.null_where(v < 0, t.strftime(origin + np.maximum(v, 0), iso))

    cols = {
        "send_id": t.cat("SND-", t.num(np.arange(1, len(rec) + 1), 8)),
        "campaign_id": t.take(pa.array([c.id for c in CAMPAIGNS]), sends.campaign[order]),
        "channel": t.take(pa.array([c.channel for c in CAMPAIGNS]), sends.campaign[order]),
        "contact_id": crm.ids.take(pa.array(rec[order])),
        "email": t.null_where(is_sms[order], crm.extra["email"].take(pa.array(rec[order]))),
        "phone": t.null_where(~is_sms[order], crm.extra["phone"].take(pa.array(rec[order]))),
        "sent_at": ts(sends.sent[order]),
        "opened_at": ts(sends.opened[order]),
        "clicked_at": ts(sends.clicked[order]),
    }
    return cols


# ------------------------------------------------------------------------------- truth
def truth_records(sources: list[CustomerSource], people: People, eshop: CustomerSource,
                  devices: np.ndarray, accounts: np.ndarray) -> dict:
    dev_owner = np.repeat(np.arange(people.n), people.dev_count)
    names, ids, who = [], [], []
    for src in sources:
        names.append(pa.array(np.full(len(src.person), src.name)))
        ids.append(src.ids.cast(pa.string()))
        who.append(src.person)
    names += [pa.array(np.full(len(accounts), "web_events")),
              pa.array(np.full(len(devices), "web_events"))]
    ids += [eshop.ids.take(pa.array(accounts, pa.int64())),
            people.dev_ids.take(pa.array(devices, pa.int64()))]
    who += [eshop.person[accounts], dev_owner[devices]]
    return {"source": pa.concat_arrays(names), "source_id": pa.concat_arrays(ids),
            "true_person_id": person_ids(np.concatenate(who))}


def truth_persons(people: People, pools: Pools) -> dict:
    idx = np.arange(people.n)
    return {
        "true_person_id": person_ids(idx),
        "first_name": t.take(pools.first, people.first),
        "last_name": t.take(pools.last, people.last),
        "email": people.email,
        "other_email": people.alt_email,
        "email_given": people.email_used,
        "phone": t.null_where(~people.has_phone, t.cat("+33", t.num(people.phone, 9))),
        "birth_date": t.strftime(people.birth.astype(np.int64) * DAY, "%Y-%m-%d"),
        "address_line1": t.cat(t.num(people.number), t.take(pools.streets, people.street),
                               sep=" "),
        "postcode": t.take(pools.places_postcode, people.place),
        "city": t.take(pools.places_city, people.place),
        "moved": t.where(people.moved, "true", "false"),
        "household_id": t.cat("H", t.num(people.household + 1, 7)),
    }


def truth_effects() -> dict:
    kinds, ids, metric, effect, desc = [], [], [], [], []
    for c in CAMPAIGNS:
        kinds.append("campaign")
        ids.append(c.id)
        metric.append("conversion_14d")
        effect.append(f"{c.lift:.2f}")
        desc.append(f"{c.description}. Relative lift on the probability of any purchase "
                    f"(store or web) within 14 days of the send; {HOLDOUT:.0%} random holdout "
                    f"not sent")
    for e in EXPERIMENTS:
        kinds.append("experiment")
        ids.append(e.id)
        metric.append("web_conversion_14d")
        effect.append(f"{e.lift:.2f}")
        desc.append(f"{e.description}. Relative lift of treatment over control on the "
                    f"probability of an e-shop order within 14 days of the first exposure")
    return {"kind": kinds, "id": ids, "metric": metric, "true_effect": effect,
            "description": desc}


def truth_assignments(assign: Assignments, origin: int) -> tuple[dict, dict]:
    audiences = {
        "campaign_id": t.take(pa.array([c.id for c in CAMPAIGNS]), assign.campaign),
        "true_person_id": person_ids(assign.campaign_person),
        "group": t.where(assign.campaign_treated, "treated", "holdout"),
    }
    exposures = {
        "experiment_id": t.take(pa.array([e.id for e in EXPERIMENTS]), assign.experiment),
        "true_person_id": person_ids(assign.exp_person),
        "variant": t.where(assign.exp_treated, "treatment", "control"),
        "first_exposed_at": t.strftime(origin + assign.exp_time, "%Y-%m-%dT%H:%M:%S"),
    }
    return audiences, exposures


def write_csv(path: Path, cols: dict, delimiter: str = ",", encoding: str = "utf-8",
              newline: str = "\n") -> int:
    cols = {k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v))
            for k, v in cols.items()}
    t.write(path, t.csv_bytes(cols, delimiter, encoding, newline))
    return len(next(iter(cols.values())))

