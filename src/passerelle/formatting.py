"""The one way figures and times are written for people: numbers, money, percentages,
counts with their noun, dates and timestamps, in the project's locale and time zone.

Every text the CLI prints and every web page goes through a :class:`Formatter`
(``passerelle.yml``'s ``locale``, ``timezone`` and ``currency``; the web app picks the
locale from the reader's interface language with :func:`for_language`), so the CLI and the
web write ``98 930,10 €`` the same way. JSON output and the API keep raw values.
Timestamps in the warehouse are naive UTC: they are shown in the project's zone, to the
second, with the zone's abbreviation, so 08:00 in a Paris CSV reads 08:00 CET, not 07:00.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent

EMPTY = "—"
Number = int | float | Decimal
# The interface languages of the web app and the locale each reads figures in when the
# project's own locale speaks another language.
LANGUAGE_LOCALES = {"fr": "fr_FR", "en": "en_GB"}
YES_NO = {"fr": ("oui", "non")}


class Formatter:
    """Formats for one locale, time zone and currency (see :func:`for_config`)."""

    def __init__(self, locale: str = "en_GB", timezone: str = "UTC", currency: str = "EUR",
                 yes_no: tuple[str, str] = ("yes", "no")):
        self.locale = Locale.parse(locale)
        self.timezone = timezone
        self.currency = currency
        self.yes_no = yes_no  # how a boolean cell reads in the interface's language

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def language(self) -> str:
        """``fr``, ``en``...: which text of a bilingual definition to show."""
        return self.locale.language

    # -- numbers ----------------------------------------------------------------------------
    def number(self, value: Number | None, decimals: int | None = None) -> str:
        """An integer as ``12 345``; a fraction with ``decimals`` places (default: 2, or as
        few as it needs up to 3 when it is small)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return EMPTY
        if isinstance(value, bool):
            return str(value).lower()
        if decimals is None and (isinstance(value, int) or float(value).is_integer()):
            return format_decimal(value, format="#,##0", locale=self.locale)  # 157, not 157.00
        places = 2 if decimals is None else decimals
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return format_decimal(value, format=pattern, locale=self.locale,
                              decimal_quantization=True)

    def integer(self, value: Number | None) -> str:
        """A count or an amount rounded to units: ``12 345``."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return EMPTY
        return self.number(round(float(value)))

    def money(self, value: Number | None, currency: str | None = None,
              cents: bool = True) -> str:
        """An amount with the locale's currency pattern; ``cents=False`` rounds to units
        (headline figures), keeping the locale's spacing (``85 €``, ``€85``)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return EMPTY
        if cents:
            return format_currency(value, currency or self.currency, locale=self.locale)
        pattern = self.locale.currency_formats["standard"].pattern.split(";")[0]
        return format_currency(round(float(value)), currency or self.currency,
                               format=re.sub(r"0\.0+", "0", pattern), locale=self.locale,
                               currency_digits=False)

    def percent(self, share: Number | None, decimals: int = 1, sign: bool = False) -> str:
        """``share`` is a fraction: 0.251 -> ``25.1 %`` (``+25.1 %`` with ``sign``)."""
        if share is None or (isinstance(share, float) and math.isnan(share)):
            return EMPTY
        pattern = self.locale.percent_formats[None].pattern  # "#,##0 %" in French
        last = pattern.rfind("0") + 1
        pattern = pattern[:last] + ("." + "0" * decimals if decimals else "") + pattern[last:]
        text = format_percent(share, format=pattern, locale=self.locale,
                              decimal_quantization=True)
        return f"+{text}" if sign and share > 0 else text

    def count(self, n: int, noun: str, plural: str | None = None) -> str:
        """``1 source``, ``2 sources``, ``1 person``/``3 people`` with ``plural``."""
        word = noun if n == 1 else (plural or f"{noun}s")
        return f"{self.number(n)} {word}"

    # -- time -------------------------------------------------------------------------------
    def local(self, moment: datetime) -> datetime:
        """A warehouse timestamp (naive = UTC) in the project's zone."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(self.zone)

    def timestamp(self, moment: datetime | str | None, seconds: bool = True) -> str:
        """``2026-11-02 08:00:00 CET``: the project's zone, no microseconds, zone said."""
        if moment is None or moment == "":
            return EMPTY
        if isinstance(moment, str):
            try:
                moment = datetime.fromisoformat(moment)
            except ValueError:
                return moment
        if not isinstance(moment, datetime):
            return self.date(moment)
        local = self.local(moment)
        return f"{local:%Y-%m-%d %H:%M{':%S' if seconds else ''}} {local.tzname()}"

    def date(self, day: date | datetime | str | None) -> str:
        if day is None or day == "":
            return EMPTY
        if isinstance(day, str):  # an ISO text, as JSON carries it
            try:
                day = datetime.fromisoformat(day)
            except ValueError:
                return day
        if isinstance(day, datetime):
            day = self.local(day).date()
        return day.isoformat()

    def seconds(self, secs: float | None) -> str:
        """A duration: ``0.4 s``, ``12 s``, ``3 min 05 s``."""
        if secs is None:
            return EMPTY
        if secs < 10:
            return f"{self.number(secs, 1)} s"
        if secs < 60:
            return f"{round(secs)} s"
        minutes, rest = divmod(round(secs), 60)
        return f"{minutes} min {rest:02d} s"

    def value(self, value: object) -> str:
        """Any cell of a table: numbers, times and text, each written the one way."""
        if value is None:
            return EMPTY
        if isinstance(value, bool):
            return self.yes_no[0] if value else self.yes_no[1]
        if isinstance(value, int | float | Decimal):
            return self.number(value)
        if isinstance(value, datetime):
            return self.timestamp(value, seconds=False)
        if isinstance(value, date):
            return self.date(value)
        if isinstance(value, list | tuple):
            return ", ".join(self.value(v) for v in value)
        return str(value)


def for_config(config: object) -> Formatter:
    """The formatter of a project's ``passerelle.yml`` (a ``ProjectConfig``)."""
    return Formatter(getattr(config, "display_locale", "en_GB"),
                     getattr(config, "timezone", "UTC"), getattr(config, "currency", "EUR"))


def for_language(lang: str, config: object) -> Formatter:
    """The formatter of a web page read in ``lang`` (``fr``, ``en``): the project's own
    locale when it speaks that language (so the web writes what the CLI writes), else the
    language's usual one; the project's time zone and currency either way."""
    project_locale = getattr(config, "display_locale", "en_GB")
    locale = (project_locale if Locale.parse(project_locale).language == lang
              else LANGUAGE_LOCALES.get(lang, "en_GB"))
    return Formatter(locale, getattr(config, "timezone", "UTC"),
                     getattr(config, "currency", None) or "EUR",
                     YES_NO.get(lang, ("yes", "no")))


DEFAULT = Formatter()  # outside a project (no passerelle.yml): British English, UTC
