"""placements/*.yml and offers/*.yml: parsing, located problems, and the template sandbox."""

from __future__ import annotations

import pytest

from passerelle.personalize.templates import MAX_OUTPUT, Renderer, RenderError, check_template
from passerelle.personalize.validate import load_offers
from personalize_helpers import FILES, write


def problems_of(root, extra):
    write(root, {**FILES, **extra})
    defs, problems = load_offers(root)
    return defs, [(p.file, p.line, p.message) for p in problems.errors]


def test_good_project_loads(tmp_path):
    defs, found = problems_of(tmp_path, {})
    assert found == []
    assert [o.name for o in defs.offers_of("home_banner")] == ["shoes", "paris_store",
                                                               "everyone"]
    assert defs.placements["home_banner"].context_fields()["device"].values == ["mobile",
                                                                               "desktop"]


def test_template_reaching_beyond_its_fields_is_refused_with_file_and_line(tmp_path):
    defs, found = problems_of(tmp_path, {"offers/bad.yml": """\
        placements: [home_banner]
        consent: none
        fields: [first_name]
        content:
          title: "{{ first_name.__class__ }}"
          body: |
            Hello {{ first_name }},
            your e-mail is {{ email }}
          url: "{{ first_name['x'] }}{{ range(10) }}"
        """})
    bad = sorted(f for f in found if f[0] == "offers/bad.yml")
    assert ("offers/bad.yml", 5, "template 'title': '.__class__': a template cannot read "
            "attributes, only its values") in bad
    assert ("offers/bad.yml", 8, "template 'body': 'email' is not a value of this template "
            "(declare it under fields: or traits:, or in the placement's context)") in bad
    assert any(f[1] == 9 and "cannot index" in f[2] for f in bad)
    assert any(f[1] == 9 and "'Call' is not allowed" in f[2] for f in bad)
    assert "bad" not in defs.offers  # never half an offer
    assert "shoes" in defs.offers


def test_references_and_context_types_are_checked(tmp_path):
    _, found = problems_of(tmp_path, {"offers/bad.yml": """\
        placements: [home_banner, nowhere]
        consent: newsletter
        eligibility: {segment: shoe_lover}
        fields: [frist_name]
        traits: [favourite_colour]
        context:
          - {context: device, op: "=", value: watch}
          - {context: cart_value, op: ">", value: "12"}
          - {context: weather, op: "=", value: sun}
        content: {title: hi}
        """})
    got = {(line, msg) for f, line, msg in found if f == "offers/bad.yml"}
    assert (1, "unknown placement 'nowhere'") in got
    assert (2, "unknown purpose 'newsletter'") in got  # no consent.yml: the two defaults
    assert (3, "unknown segment 'shoe_lover'") in got
    assert (4, "'frist_name' is not a field of the golden record") in got
    assert (5, "'favourite_colour' is not a trait of this project") in got
    assert (7, "'watch' is not a valid value of 'device' (text, one of ['mobile', "
            "'desktop'])") in got
    assert (8, "'12' is not a valid value of 'cart_value' (number)") in got
    assert (9, "'weather' is not a context value of every placement of the offer") in got


def test_inline_eligibility_uses_the_segment_checks(tmp_path):
    _, found = problems_of(tmp_path, {"offers/bad.yml": """\
        placements: [home_banner]
        consent: none
        eligibility:
          where: {field: contry, op: "=", value: FR}
        content: {title: hi}
        """})
    assert ("offers/bad.yml", 4, "'contry' is not a field of profiles") in found


def test_shape_errors_are_located(tmp_path):
    _, found = problems_of(tmp_path, {"offers/bad.yml": """\
        placements: [home_banner]
        consent: [email]
        caps: [{at_most: 0, per: 1d}]
        content: {title: hi}
        budget: 10
        """})
    lines = {line for f, line, _ in found if f == "offers/bad.yml"}
    assert {2, 3} <= lines


@pytest.mark.parametrize("source,why", [
    ("{{ x.upper() }}", "cannot read attributes"),
    ("{{ x|attr('__class__') }}", "filter 'attr' is not allowed"),
    ("{{ 'a' * 10 }}{{ 9 ** 99 }}", "'Pow' is not allowed"),
    ("{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}", "cannot be nested"),
    ("{% macro m() %}{% endmacro %}", "'Macro' is not allowed"),
    ("{% include 'x' %}", "'Include' is not allowed"),
    ("{{ x|center(1000000000) }}", "filter 'center' is not allowed"),
])
def test_sandbox_refuses(source, why):
    assert any(why in p.message for p in check_template(source, {"x"}))


def test_allowed_template_renders_and_escapes_html_bodies():
    r = Renderer()
    content = {"title": "{{ name|title }} & co", "body": "<p>{{ name }}</p>"}
    assert check_template(content["title"], {"name"}) == []
    out = r.render(content, {"name": "<b>ann</b>"})
    assert out["title"] == "<B>ann</b> & co"  # text: not escaped
    assert out["body"] == "<p>&lt;b&gt;ann&lt;/b&gt;</p>"


def test_output_is_bounded_and_empty_or_failing_renders_are_errors():
    r = Renderer()
    with pytest.raises(RenderError, match="longer than"):
        r.render({"t": "{% for c in x %}{{ x }}{% endfor %}"}, {"x": "a" * 200})
    with pytest.raises(RenderError, match=r"longer than|output limit"):
        r.render({"t": "{{ x * 100000 }}"}, {"x": "ab"})
    with pytest.raises(RenderError, match="renders empty"):
        r.render({"t": "{{ x }}  "}, {"x": ""})
    with pytest.raises(RenderError, match="failed to render"):
        r.render({"t": "{{ x|int + y }}"}, {"x": "1"})
    assert MAX_OUTPUT >= 10_000


def test_docs_examples_are_valid_files():
    import re
    from pathlib import Path

    import yaml

    from passerelle.project.offers_models import OfferConfig, PlacementConfig

    text = (Path(__file__).resolve().parents[1] / "docs" / "personalisation.md").read_text()
    # each block is labelled with its file (first line `# offers/x.yml`)
    blocks = re.findall(r"```yaml\n# (\w+)/(\w+)\.yml\n(.*?)```", text, flags=re.S)
    models = {"placements": PlacementConfig, "offers": OfferConfig}
    checked = [models[folder].model_validate({"name": name, **yaml.safe_load(body)})
               for folder, name, body in blocks if folder in models]
    assert {type(c) for c in checked} == {PlacementConfig, OfferConfig}
    assert any(getattr(c, "ranking", None) == "learned" for c in checked)
