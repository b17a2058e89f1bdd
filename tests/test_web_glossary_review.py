"""Splicing one definition into a YAML file: the entry replaced or added, every other line
(comments, other entries, other top-level keys) kept as it was."""

from __future__ import annotations

import pytest
import yaml

from passerelle.web.glossary_review import DefinitionRefused, parse_definition, splice

FILE = """\
# Our metrics. Reference: docs/metrics.md.
semantic_models:
  - name: orders
    model: orders
metrics:
  - name: revenue            # the finance team's figure
    type: simple
    type_params: {measure: revenue}

  # the number of orders
  - {name: orders, type: simple, type_params: {measure: order_count}}
  - name: aov
    type: ratio
    type_params: {numerator: revenue, denominator: orders}
other: kept
"""


def test_a_middle_entry_is_replaced_and_the_rest_kept_line_for_line():
    new = splice(FILE, "metrics/x.yml", "metrics", 1,
                 {"name": "orders", "type": "simple", "owner": "Finance",
                  "type_params": {"measure": "order_count"}})
    before, after = FILE.splitlines(), new.splitlines()
    assert after[:10] == before[:10]  # comments and blank line before the entry kept
    assert after[10:14] == ["  - name: orders", "    type: simple", "    owner: Finance",
                            "    type_params:"]
    assert after[-4:] == before[-4:]
    data = yaml.safe_load(new)
    assert [m["name"] for m in data["metrics"]] == ["revenue", "orders", "aov"]
    assert data["other"] == "kept" and data["semantic_models"][0]["name"] == "orders"


def test_a_new_entry_goes_after_the_last_one_before_the_next_key():
    new = splice(FILE, "metrics/x.yml", "metrics", None, {"name": "margin", "type": "simple"})
    data = yaml.safe_load(new)
    assert [m["name"] for m in data["metrics"]] == ["revenue", "orders", "aov", "margin"]
    assert new.endswith("    type: simple\nother: kept\n")
    assert new.startswith("# Our metrics. Reference: docs/metrics.md.\n")


def test_a_file_without_the_list_gets_it_and_an_empty_file_too():
    new = splice("semantic_models: []\n", "metrics/x.yml", "metrics", None, {"name": "m"})
    assert yaml.safe_load(new) == {"semantic_models": [], "metrics": [{"name": "m"}]}
    new = splice("metrics: []  # none yet\nother: 1\n", "metrics/x.yml", "metrics", None,
                 {"name": "m"})
    assert yaml.safe_load(new) == {"metrics": [{"name": "m"}], "other": 1}
    assert yaml.safe_load(splice("", "traits/t.yml", "traits", None, {"name": "t"})) == \
        {"traits": [{"name": "t"}]}
    with pytest.raises(DefinitionRefused, match="is not a list"):
        splice("metrics: nope\n", "metrics/x.yml", "metrics", None, {"name": "m"})


def test_a_definition_is_one_mapping_named_as_proposed():
    assert parse_definition("trait", "t", "name: t\nowner: x\n") == {"name": "t", "owner": "x"}
    for text, message in (("- name: t\n", "one mapping"), ("name: u\n", "not 't'"),
                          ("name: [t\n", "not valid YAML")):
        with pytest.raises(DefinitionRefused, match=message):
            parse_definition("trait", "t", text)
