"""The SQL fast paths agree with the Python libraries they stand in for.

E-mails: every address the SQL test calls plain must be accepted, unchanged, by
email-validator. Phones: for French spellings, the SQL E.164 must equal phonenumbers'
answer on every value, valid or not.
"""

from __future__ import annotations

import random

import pyarrow as pa

from passerelle.staging import dictionaries as dicts

_LOCAL = "abcdefghijklmnopqrstuvwxyz0123456789._+-ABCZ"
_LABEL = "abcdefghijklmnopqrstuvwxyz0123456789-"
_TLDS = ["fr", "com", "test", "local", "x", "c0m", "co.uk", "onion", "123", "xn--p1ai",
         "localhost", "invalid", "example", "arpa", "museum", "FR", "-fr", "fr-"]
_EDGES = [
    "a@b.fr", "A@B.FR", " a@b.fr ", "a..b@x.fr", ".a@x.fr", "a.@x.fr", "a@x..fr", "a@-x.fr",
    "a@x-.fr", "a@ab--cd.fr", "a@xn--bcher-kva.ch", "é@x.fr", "a@é.fr", "a b@x.fr", "a@b",
    "a@b.c", "@x.fr", "a@", "a@@x.fr", "a@x.fr.", "\"a\"@x.fr", "a@[1.2.3.4]", "a@1.2.3.4",
    "x" * 64 + "@x.fr", "x" * 65 + "@x.fr", "a@" + "x" * 63 + ".fr", "a@" + "x" * 64 + ".fr",
    "a@" + ".".join(["x" * 60] * 5) + ".fr", "a+b@x.fr", "a_b@x_y.fr", "a'b@x.fr",
    "a@x.test", "a@mail.local", "jean-pierre.dupont@exemple-site.fr", "a@x.onion",
]


def _random_emails(n: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        local = "".join(rng.choice(_LOCAL) for _ in range(rng.choice([1, 3, 8, 20, 63, 64, 65])))
        labels = ["".join(rng.choice(_LABEL) for _ in range(rng.choice([1, 2, 5, 12, 63, 64])))
                  for _ in range(rng.choice([1, 1, 2, 3]))]
        out.append(f"{local}@{'.'.join(labels)}.{rng.choice(_TLDS)}")
    return out


def _evaluate(engine, name: str, values: list[str], fn) -> list:
    engine.append_arrow(name, pa.table({"x": pa.array(values, pa.string())}).to_reader())
    t = engine.table(name)
    t = t.mutate(k=fn(t.x))
    rows = engine.to_arrow(t.select("x", "k")).to_pylist()
    return rows


def test_email_fast_path_only_accepts_what_email_validator_accepts_unchanged(engine):
    rng = random.Random(20240701)
    values = _EDGES + _random_emails(3000, rng)

    def fast(x):
        key = dicts.email_key(x)
        return dicts.email_is_plain(key).ifelse(key, None)

    rows = _evaluate(engine, "emails", values, fast)
    accepted = [r for r in rows if r["k"] is not None]
    assert len(accepted) > 300  # the fast path is worth having
    for row in accepted:
        assert dicts.normalize_email(row["k"]) == (row["k"], None), row["x"]
    # and the fast path is no stricter than needed for ordinary addresses
    plain = {"a@b.fr", "a+b@x.fr", "jean-pierre.dupont@exemple-site.fr", "A@B.FR"}
    assert plain <= {r["x"] for r in accepted}


def _french_spellings(nsn: str) -> list[str]:
    pairs = " ".join(nsn[i:i + 2] for i in range(1, 9, 2))
    return [f"0{nsn[0]} {pairs}", f"0{nsn[0]}.{pairs.replace(' ', '.')}", f"0{nsn}",
            f"+33 {nsn[0]} {pairs}", f"0033 {nsn[0]} {pairs}", f"+33 (0){nsn[0]} {pairs}",
            f"+33{nsn}", f"0{nsn}1", f"0{nsn[:-1]}"]


def test_french_phone_fast_path_equals_phonenumbers(engine):
    rng = random.Random(7)
    values = []
    for prefix in range(100, 1000):
        for _ in range(2):
            values += _french_spellings(f"{prefix}{rng.randrange(10**6):06d}")
    rows = _evaluate(engine, "phones", values,
                     lambda x: dicts.phone_fast(dicts.phone_key(x), "FR"))
    mismatches = [(r["x"], r["k"], dicts.normalize_phone(r["x"], "FR")[0]) for r in rows
                  if r["k"] != dicts.normalize_phone(r["x"], "FR")[0]]
    assert mismatches == []
    assert sum(r["k"] is not None for r in rows) > 5000
