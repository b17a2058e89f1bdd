"""traits/*.yml: valid files parse; every mistake is reported with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from passerelle.errors import ProjectError
from passerelle.project.traits_models import (
    AggregateTrait,
    BuiltinTrait,
    value_kind,
)
from passerelle.traits.expr import ExpressionError, compile_where
from passerelle.traits.files import load_traits, unbound_table

GOOD = """\
traits:
  - name: orders_90d
    description: Orders placed in the last 90 days
    owner: CRM team
    type: aggregate
    entity: orders
    function: count
    window_days: 90
  - name: total_spend
    description: Spend on orders that were not cancelled
    owner: Finance
    type: aggregate
    entity: orders
    function: sum
    column: amount
    where: "status IS NULL OR status NOT IN ('cancelled', 'refunded')"
  - name: last_purchase
    description: Day of the last order
    owner: CRM team
    type: aggregate
    entity: orders
    function: max
    column: ordered_at
  - name: clv
    description: Spend expected over the next year
    owner: Data team
    type: builtin
    builtin: clv
    horizon_days: 365
"""


def write(root: Path, name: str, text: str) -> None:
    (root / "traits").mkdir(exist_ok=True)
    (root / "traits" / name).write_text(text, "utf-8")


def problems_of(root: Path) -> list[str]:
    with pytest.raises(ProjectError) as info:
        load_traits(root)
    return [str(p) for p in info.value.problems]


def test_good_file_parses_with_origin(tmp_path):
    write(tmp_path, "core.yml", GOOD)
    defs = load_traits(tmp_path)
    assert [t.name for t in defs.traits] == ["orders_90d", "total_spend", "last_purchase", "clv"]
    count, spend, last, clv = defs.traits
    assert isinstance(count, AggregateTrait) and count.window_days == 90
    assert isinstance(clv, BuiltinTrait) and clv.horizon_days == 365
    assert defs.origin["total_spend"] == ("traits/core.yml", 9)
    assert [value_kind(t) for t in (count, spend, last)] == ["number", "number", "date"]


BAD = """\
traits:
  - name: spend
    description: d
    owner: o
    type: aggregate
    entity: orders
    function: sum
    column: amout
  - name: windowed
    description: d
    owner: o
    type: aggregate
    entity: orders
    function: count
    window_days: 0
  - name: magic
    description: d
    owner: o
    type: builtin
    builtin: propensity
  - name: text_sum
    description: d
    owner: o
    type: aggregate
    entity: events
    function: sum
    column: event
  - name: filtered
    description: d
    owner: o
    type: aggregate
    entity: orders
    function: count
    where: "md5(email) = 'x'"
  - name: typo_filter
    description: d
    owner: o
    type: aggregate
    entity: events
    function: count
    where: "chanel = 'email'"
  - name: no_column
    description: d
    owner: o
    type: aggregate
    entity: orders
    function: avg
  - name: clv_window
    description: d
    owner: o
    type: builtin
    builtin: clv
    window_days: 30
"""


def test_bad_traits_are_located(tmp_path):
    write(tmp_path, "bad.yml", BAD)
    found = sorted(problems_of(tmp_path), key=lambda p: int(p.split(":")[1]))
    expected = [
        ("traits/bad.yml:8: 'amout' is not a column of orders", "did you mean 'amount'?"),
        ("traits/bad.yml:15: traits.1.window_days: Input should be greater than 0", None),
        ("traits/bad.yml:20: traits.2.builtin: Input should be 'rfm', 'clv'", None),
        ("traits/bad.yml:26: sum needs a number, and 'event' is text", None),
        ("traits/bad.yml:34: where: 'md5(email) = 'x'': ", "not allowed"),
        ("traits/bad.yml:41: where: unknown column 'chanel'", "did you mean 'channel'?"),
        ("traits/bad.yml:47: function 'avg' needs a `column`", None),
        ("traits/bad.yml:53: window_days does not apply to builtin 'clv'", None),
    ]
    assert len(found) == len(expected), found
    for (start, hint), text in zip(expected, found, strict=True):
        assert text.startswith(start), text
        if hint:
            assert hint in text


def test_duplicate_names_across_files_and_unknown_keys(tmp_path):
    write(tmp_path, "a.yml", GOOD)
    write(tmp_path, "b.yml", GOOD.replace("window_days: 90", "window_dayz: 90")
          .replace("name: total_spend", "name: spend_b")
          .replace("name: last_purchase", "name: last_b").replace("name: clv", "name: clv_b"))
    found = problems_of(tmp_path)
    assert found == [
        "traits/b.yml:8: unknown key 'traits.0.window_dayz' (hint: did you mean 'window_days'?)",
    ]
    write(tmp_path, "b.yml", GOOD.replace("name: total_spend", "name: spend_b")
          .replace("name: last_purchase", "name: last_b").replace("name: clv", "name: clv_b"))
    found = problems_of(tmp_path)
    assert found == ["traits/b.yml:2: trait name 'orders_90d' is used twice "
                     "(hint: first defined in traits/a.yml:2)"]


def test_yaml_syntax_error_is_located(tmp_path):
    write(tmp_path, "broken.yml", "traits:\n  - name: x\n   description: [oops\n")
    found = problems_of(tmp_path)
    assert len(found) == 1 and found[0].startswith("traits/broken.yml:3: YAML syntax error")


@pytest.mark.parametrize("text, message", [
    ("amount > 10 AND (SELECT 1) = 1", "subqueries are not allowed"),
    ("amount > 10; DROP TABLE orders", "one expression only"),
    ("orders.amount > 10", "not table.column"),
    ("channel IN (SELECT channel FROM orders)", "subqueries are not allowed"),
    ("random() > 0.5", "is not allowed"),
    ("amount + 1", "true or false"),
    ("channel > 3", "the types do not fit"),
    ("amount IS 3", "IS NULL"),
    ("chanel = 'web'", "unknown column 'chanel'"),
])
def test_filters_outside_the_safe_subset_are_refused(text, message):
    with pytest.raises(ExpressionError, match=message):
        compile_where(text, unbound_table("orders"))


def test_safe_filters_compile_to_the_expected_expression():
    t = unbound_table("orders")
    expr = compile_where("channel IN ('web', 'app') AND NOT amount BETWEEN 0 AND 10 "
                         "OR status LIKE 'ref%' OR store_id IS NOT NULL", t)
    expected = ((t.channel.isin(["web", "app"]) & ~t.amount.between(0, 10))
                | t.status.like("ref%") | ~t.store_id.isnull())
    assert expr.equals(expected)


def test_builtin_traits_are_defined_in_english_and_french(tmp_path):
    """The glossary shows a built-in trait's standard definition in the project's language
    (`--lang` overrides it); a trait the project defines keeps its own words."""
    from passerelle.project.traits_models import Builtin
    from passerelle.traits.definitions import BUILTIN_DEFINITIONS, language_of
    from passerelle.traits.glossary import trait_entries

    assert set(BUILTIN_DEFINITIONS) == set(Builtin.__args__)  # every built-in, both languages
    for texts in BUILTIN_DEFINITIONS.values():
        assert set(texts) == {"en", "fr"} and texts["en"] != texts["fr"]
    write(tmp_path, "t.yml", GOOD)
    traits = load_traits(tmp_path)
    by_lang = {lang: {e["name"]: e for e in trait_entries(traits, None, {}, lang=lang)}
               for lang in ("fr", "en")}
    assert by_lang["fr"]["clv"]["definition"].startswith("Dépense attendue sur l'horizon")
    assert by_lang["en"]["clv"]["definition"].startswith("Spend expected over the horizon")
    assert by_lang["fr"]["clv"]["description"] == "Spend expected over the next year"
    own = by_lang["fr"]["orders_90d"]
    assert own["definition"] == "Orders placed in the last 90 days" and own["definitions"] is None
    assert language_of(None, "fr_BE") == "fr" and language_of("en-GB", "fr_FR") == "en"
    assert language_of(None, "de_DE") == "en"  # no German texts: English
