"""Editing a project file in place (project/yaml_edit.py): comments, key order, quoting and
the file's own indentation stay; only what changed is rewritten."""

from __future__ import annotations

import pytest
import yaml

from passerelle.project.yaml_edit import edited

STYLES = {
    "indented dashes": """# IT: reviewed (CRM-12)
name: fr_buyers   # the name audiences use
description: "French buyers"
where:
  all:
    # country first
    - {field: country, op: "=", value: FR}
    - trait: total_spend   # euros
      op: ">="
      value: 300
refresh_every: 1d
""",
    "flush dashes": """# IT: reviewed (CRM-12)
name: fr_buyers   # the name audiences use
description: "French buyers"
where:
  all:
  # country first
  - {field: country, op: "=", value: FR}
  - trait: total_spend   # euros
    op: ">="
    value: 300
refresh_every: 1d
""",
    "four spaces": """# IT: reviewed (CRM-12)
name: fr_buyers   # the name audiences use
description: "French buyers"
where:
    all:
        # country first
        - {field: country, op: "=", value: FR}
        - trait: total_spend   # euros
          op: ">="
          value: 300
refresh_every: 1d
""",
}


@pytest.mark.parametrize("style", STYLES)
def test_only_the_changed_value_changes(style):
    text = STYLES[style]
    doc = yaml.safe_load(text)
    doc["where"]["all"][1]["value"] = 400
    doc["owner"] = "CRM"
    out = edited(text, {k: doc[k] for k in ("name", "description", "owner", "where",
                                            "refresh_every")})
    assert yaml.safe_load(out) == doc
    before, after = text.splitlines(), out.splitlines()
    assert after[:len(before)] == [line.replace("300", "400") for line in before]
    assert after[len(before):] == ["owner: CRM"]  # a new key comes last


def test_removed_keys_go_implied_ones_stay_out_and_non_mappings_are_refused():
    text = STYLES["indented dashes"]
    doc = yaml.safe_load(text)
    del doc["refresh_every"], doc["name"]
    out = edited(text, doc, implied=("name",))
    assert "refresh_every" not in out and "name: fr_buyers" not in out
    assert "# IT: reviewed (CRM-12)" in out and "# euros" in out
    assert edited("- a\n- b\n", {"a": 1}) is None
    assert edited("a: [unclosed\n", {"a": 1}) is None
