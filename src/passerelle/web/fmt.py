"""Numbers, money, dates and times as the reader's language writes them (Babel's CLDR data).

The web app's own small set until a formatting module is shared with the CLI: every page
formats through these, so "98 930,10 €" is written one way everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel import Locale, dates, numbers

LOCALES = {"fr": "fr_FR", "en": "en_GB"}
DASH = "—"


def _locale(lang: str) -> str:
    return LOCALES.get(lang, LOCALES["en"])


def integer(value: int | float | Decimal | None, lang: str) -> str:
    if value is None:
        return DASH
    return numbers.format_decimal(round(float(value)), locale=_locale(lang))


def decimal(value: int | float | Decimal | None, lang: str, digits: int = 2) -> str:
    if value is None:
        return DASH
    pattern = "#,##0." + "0" * digits if digits else "#,##0"
    return numbers.format_decimal(value, format=pattern, locale=_locale(lang))


def money(value: int | float | Decimal | None, lang: str, currency: str = "EUR",
          cents: bool = True) -> str:
    """An amount with the locale's currency pattern; ``cents=False`` rounds to units (the
    home tiles), keeping the locale's spacing ("85 €", "€85")."""
    if value is None:
        return DASH
    locale = Locale.parse(_locale(lang))
    if cents:
        return numbers.format_currency(value, currency, locale=locale)
    pattern = locale.currency_formats["standard"].pattern.split(";")[0]
    return numbers.format_currency(round(float(value)), currency,
                                   format=re.sub(r"0\.0+", "0", pattern), locale=locale,
                                   currency_digits=False)


def percent(value: float | None, lang: str, digits: int = 1, signed: bool = False) -> str:
    """``value`` is a share (0.25 is 25 %), written with the locale's own percent sign and
    spacing ("25,3 %" in French)."""
    if value is None:
        return DASH
    locale = Locale.parse(_locale(lang))
    pattern = locale.percent_formats[None].pattern.split(";")[0]
    if digits:
        pattern = pattern.replace("#,##0", "#,##0." + "0" * digits, 1)
    text = numbers.format_percent(value, format=pattern, locale=locale)
    return "+" + text if signed and value > 0 else text


def _local(value: datetime, tz: str | None) -> datetime:
    """The warehouse keeps times in UTC without a zone: shown in the project's timezone."""
    if tz is None:
        return value
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(tz))


def day(value: date | datetime | str | None, lang: str, tz: str | None = None) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = _local(value, tz).date()
    return dates.format_date(value, format="medium", locale=_locale(lang))


def moment(value: datetime | str | None, lang: str, tz: str | None = None) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):  # a date alone
        return day(value, lang)
    return dates.format_datetime(_local(value, tz), format="medium", locale=_locale(lang))


def value(v: object, lang: str) -> str:
    """Any value of a trait or a record field, formatted by its type."""
    if v is None:
        return DASH
    if isinstance(v, bool):
        return {("fr", True): "oui", ("fr", False): "non"}.get((lang, v), str(v).lower())
    if isinstance(v, int):
        return integer(v, lang)
    if isinstance(v, float | Decimal):
        return decimal(v, lang)
    if isinstance(v, datetime):
        return moment(v, lang)
    if isinstance(v, date):
        return day(v, lang)
    return str(v)
