"""Campaigns and experiments pages on a copy of the shared demo: campaign results with their
intervals drawn and tabled, the attribution models side by side, the sample-size calculator,
an experiment's read-out with a verdict that states its uncertainty, and the SRM check."""

from __future__ import annotations

import re

import pytest

from passerelle.formatting import Formatter
from passerelle.measure.design import sample_size_proportions
from passerelle.measure.report import ALL_MODELS, analyse_experiment, campaign_results
from passerelle.web.campaign_pages import MESSAGES, MODEL_NAMES, verdict
from passerelle.web.i18n import FR, translator
from passerelle.web.segment_form import MESSAGES as FORM_MESSAGES
from passerelle.web.segment_pages import MESSAGES as SEGMENT_MESSAGES
from web_demo_helpers import MARKETER, served_demo, signed_in, text_of


@pytest.fixture(scope="module")
def demo(demo_copy):
    with served_demo(demo_copy.project_dir) as (project, app):
        yield project, app


def test_campaign_results_show_each_interval_in_the_chart_and_the_table(demo):
    project, app = demo
    client = signed_in(app, MARKETER)
    html = client.get("/campaigns").text + client.get("/campaigns/sections/results").text
    rows = campaign_results(project, project.engine).to_pylist()
    shown = [r for r in rows if r["revenue"] is not None]
    assert shown
    chart = html[html.index('id="section-results"'):html.index('id="results-table"')]
    assert chart.count("<circle") == len(shown)
    assert chart.count('stroke-width="3"') == len(shown)  # one interval line per estimate
    table = html[html.index('id="results-table"'):]
    fm = Formatter("fr_FR", "Europe/Paris", "EUR")
    first = shown[0]
    cell = f"{fm.money(first['revenue_low'])} – {fm.money(first['revenue_high'])}"
    assert cell in text_of(table)


def test_attribution_models_side_by_side_in_a_chart_and_a_table(demo):
    _, app = demo
    html = signed_in(app, MARKETER).get("/campaigns/sections/attribution").text
    table = html[html.index('id="attribution-table"'):]
    table = table[:table.index("</table>")]
    headers = re.findall(r'<th scope="col">([^<]+)</th>', table)[1:]
    _ = translator("fr")
    assert headers == [_(MODEL_NAMES[m]) for m in ALL_MODELS]
    channels = re.findall(r'<th scope="row">([^<]+)</th>', table)
    chart = html[html.index('id="section-attribution"'):html.index('id="attribution-table"')]
    assert chart.count("<rect") == len(channels) * len(ALL_MODELS) + len(ALL_MODELS)


def test_the_sample_size_calculator_answers_per_arm(demo):
    _, app = demo
    r = signed_in(app, MARKETER).get("/experiments?metric=conversion&baseline=5&mde=10")
    size = sample_size_proportions(0.05, 0.10)
    text = text_of(re.search(r'id="sample-size">(.*?)</p>', r.text).group(1))
    fm = Formatter("fr_FR")
    assert text == (f"Il faut {fm.number(size.control)} personnes dans le groupe de contrôle "
                    f"et {fm.number(size.variant)} dans la variante "
                    f"({fm.number(size.control + size.variant)} en tout).")
    bad = signed_in(app, MARKETER).get("/experiments?metric=conversion&baseline=0&mde=10")
    assert 'role="alert"' in bad.text and "sample-size" not in bad.text
    odd = signed_in(app, MARKETER).get("/experiments?baseline=5&mde=dix&std=")
    assert odd.status_code == 200 and 'role="alert"' in odd.text
    assert "« dix » n’est pas un nombre." in text_of(odd.text)


def test_an_experiment_read_out_states_its_uncertainty_and_the_srm_check(demo):
    project, app = demo
    name = sorted(project.definition.experiments.experiments)[0]
    html = signed_in(app, MARKETER).get(f"/experiments/{name}").text
    result = analyse_experiment(project, project.engine, name)
    primary = next(c for c in result["comparisons"] if c["primary"])
    fm = Formatter("fr_FR")
    lift = primary["lift"]
    expected = (f"{fm.percent(lift['estimate'], 1, sign=True)} sur {primary['metric']}, entre "
                f"{fm.percent(lift['low'], 1, sign=True)} et "
                f"{fm.percent(lift['high'], 1, sign=True)}")
    said = text_of(re.search(r'class="verdict"[^>]*>(.*?)</p>', html, re.S).group(1))
    assert expected in said and "intervalle à 95\u00a0%" in said
    srm = text_of(re.search(r'id="srm">(.*?)</p>', html, re.S).group(1))
    assert ("comme prévu" in srm) != result["srm"]["mismatch"]
    assert fm.number(result["srm"]["p_value"], 3) in srm
    assert signed_in(app, MARKETER).get("/experiments/nope").status_code == 404


def _comparison(estimate, low, high, significant):
    return {"metric": "orders", "lift": {"estimate": estimate, "low": low, "high": high},
            "significant": significant}


def test_the_verdict_reads_like_the_issue_in_both_languages():
    result = {"level": 0.95, "srm": {"mismatch": False}}
    gain = _comparison(0.097, 0.017, 0.178, True)
    en = verdict(gain, result, Formatter("en_GB"), translator("en"))
    assert en == ("+9.7% orders, between +1.7% and +17.8%; likely a real gain "
                  "(95% interval).")
    fr = verdict(gain, result, Formatter("fr_FR"), translator("fr"))
    assert fr.startswith("+9,7\u00a0% sur orders, entre +1,7\u00a0% et +17,8\u00a0% ; "
                         "probablement un vrai gain")
    unsure = verdict(_comparison(0.03, -0.02, 0.08, False), result, Formatter("en_GB"),
                     translator("en"))
    assert "could be no difference at all" in unsure and "-2.0%" in unsure
    loss = verdict(_comparison(-0.05, -0.09, -0.01, True), result, Formatter("en_GB"),
                   translator("en"))
    assert "likely a real loss" in loss
    broken = verdict(gain, {"level": 0.95, "srm": {"mismatch": True}}, Formatter("en_GB"),
                     translator("en"))
    assert broken.startswith("Do not trust this result")


def test_messages_kept_out_of_the_templates_have_their_french():
    words = [*MESSAGES, *SEGMENT_MESSAGES, *FORM_MESSAGES, *MODEL_NAMES.values()]
    assert [w for w in words if w not in FR] == []
