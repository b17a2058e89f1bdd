"""What commands print fits an 80-column terminal, and writes figures and times one way
(the project's locale and time zone, through passerelle.formatting)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from pydantic import ValidationError
from rich.console import Console

from passerelle.cli.common import _plain
from passerelle.cli.measure import CAMPAIGN_COLUMNS, MONEY
from passerelle.formatting import Formatter
from passerelle.project.models import ProjectConfig
from passerelle.render import arrow_table, glossary_table, record_text, rows_table, runs_table

FR = Formatter("fr_FR", "Europe/Paris", "EUR")
EN = Formatter("en_GB", "Europe/London", "GBP")


def render(renderable) -> list[str]:
    console = Console(width=80, record=True, color_system=None)
    console.print(renderable)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    return lines


def test_numbers_money_percent_counts_in_the_locale():
    assert FR.number(98930.1) == "98\u202f930,10" and EN.number(98930.1) == "98,930.10"
    assert FR.number(157.0) == "157" and EN.number(1234) == "1,234"  # a count, not 157.00
    assert FR.money(30296.1) == "30\u202f296,10\xa0€" and EN.money(30296.1) == "£30,296.10"
    assert FR.percent(-0.251) == "-25,1\xa0%" and EN.percent(-0.251) == "-25.1%"
    assert EN.percent(0.1, sign=True) == "+10.0%"
    assert [EN.count(n, "source") for n in (1, 2)] == ["1 source", "2 sources"]
    assert EN.count(1, "person", "people") == "1 person" and EN.count(0, "problem") == \
        "0 problems"


def test_times_in_the_project_zone_with_the_zone_and_no_microseconds():
    # the warehouse keeps naive UTC: 07:00 UTC is the 08:00 of a Paris CSV in winter
    utc = datetime(2026, 11, 2, 7, 0, 0, 123456)
    assert FR.timestamp(utc) == "2026-11-02 08:00:00 CET"
    assert FR.timestamp(datetime(2026, 7, 1, 6, 0)) == "2026-07-01 08:00:00 CEST"
    assert EN.timestamp(utc, seconds=False) == "2026-11-02 07:00 GMT"
    assert FR.date(date(2026, 1, 5)) == "2026-01-05" and FR.value(None) == "—"


def test_locale_follows_the_region_unless_set():
    assert ProjectConfig(name="p").display_locale == "fr_FR"
    assert ProjectConfig(name="p", default_region="DE").display_locale == "de_DE"
    assert ProjectConfig(name="p", locale="en-GB").display_locale == "en_GB"
    with pytest.raises(ValidationError, match="unknown locale"):
        ProjectConfig(name="p", locale="xx_YY")


def test_json_keeps_amounts_as_numbers():
    assert _plain(Decimal("1013627.20")) == 1013627.2 and _plain(Decimal("12")) == 12
    assert _plain(datetime(2026, 1, 2, 3, 4)) == "2026-01-02T03:04:00"


def run_rows() -> list[dict]:
    started = datetime(2026, 12, 7, 5, 33, 24, 482197)
    message = ("data/store/tickets.csv: 1 malformed line(s) sent to quarantine (first: row "
               "325, too many columns) and more words that would wrap one per line")
    return [dict(run_id="20261207T053324482197-4735da1e", step=step, target=target,
                 started_at=started, finished_at=started.replace(second=40), rows_in=1394,
                 rows_out=1392, status="ok", message=message)
            for step, target in (("load", "newsletter_signups"), ("stage", "store_tickets"),
                                 ("identity", ""))]


def test_status_fits_80_columns_run_id_whole_one_line_a_step():
    lines = render(runs_table(run_rows(), FR))
    text = "\n".join(lines)
    assert "Run 20261207T053324482197-4735da1e · 2026-12-07 06:33:24 CET" in text
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 3  # one line a step: the message is cut, not wrapped word by word
    for line, target in zip(body, ("newsletter_signups", "store_tickets", ""), strict=True):
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert cells[:5] == [cells[0], target, "16 s", "1\u202f392", "ok"]
        assert "…" not in "".join(cells[:5]) and cells[5].endswith("…")
    wide = render(runs_table(run_rows(), FR, wide=True))
    assert "rows in" in wide[2] and "malform" in "".join(wide)  # in full, folded


def test_glossary_one_line_an_entry_at_80_columns():
    entries = [dict(name=f"metric_{i}", kind="metric", owner="Finance",
                    definition="Panier moyen TTC (chiffre d'affaires divisé par le nombre de "
                               "commandes), hors retours et hors frais de port")
               for i in range(3)]
    body = [line for line in render(glossary_table(entries)) if line.startswith("│")]
    assert len(body) == 3 and all("metric_" in line and "Finance" in line for line in body)


def test_campaigns_key_columns_whole_at_80_columns():
    table = pa.table({c: [v] for c, v in dict(
        campaign_id="email_nouvelle_collection", channel="email", period=None,
        spend=1069.3, reach=58, conversions=157.0, conversions_low=18.1, revenue=10886.6,
        revenue_low=2934.05, cpa=11.15, roas=21.609, roi=20.6, notes="").items()})
    columns = [c for c in CAMPAIGN_COLUMNS if c != "period"]
    lines = render(arrow_table(table, FR, columns, money=MONEY))
    row = next(line for line in lines if "email_nouvelle_collection" in line)
    assert "1\u202f069,30\xa0€" in row and "10\u202f886,60\xa0€" in row and " 157 " in row
    assert "…" not in "\n".join(lines) and "conversions low" not in lines[1]


def test_one_record_as_key_value_lines_and_rows_with_wide_columns():
    text = "\n".join(render(record_text({"audience": "vip_email", "treated": 1234,
                                         "built_at": datetime(2026, 1, 5, 7)}, FR)))
    assert "audience: vip_email" in text and "treated:  1\u202f234" in text
    assert "built at: 2026-01-05 08:00 CET" in text
    rows = [{"audience": "vip_email", "treated": 3, "why": "x " * 80}]
    narrow = render(rows_table(rows, ("audience", "treated"), FR, more=("why",)))
    assert "why" not in narrow[1]
    wide = render(rows_table(rows, ("audience", "treated"), FR, more=("why",), wide=True))
    assert "why" in wide[1]


def test_next_steps_are_never_cut_at_80_columns(shared_demo):
    """The demo's closing lines: whole commands at any width (look-up, segment, export,
    server included)."""
    import passerelle
    from passerelle.cli.project import next_steps

    with passerelle.open(shared_demo.project_dir) as proj:
        wide, narrow = next_steps(proj, 200), next_steps(proj, 80)
    commands = [line.strip() for line in narrow.splitlines() if line.startswith("    ")]
    assert all(len(line) <= 80 or line.startswith("    passerelle") for line in
               narrow.splitlines())
    for needed in ("status", "profile", "segment count", "export", "serve"):
        assert any(c.startswith(f"passerelle {needed}") for c in commands), needed
        assert f"passerelle {needed}" in wide
    assert all(command in wide for command in commands)  # the same commands, laid out
