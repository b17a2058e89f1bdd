"""``consent.yml``: the purposes people consent to, and where their choices are read from.

A purpose is what a use of personal data is for (a newsletter, personalised offers, ad
audiences, analytics). Each declares its legal basis, the channels it covers, and how the
statements of it are mapped::

    purposes:
      newsletter:
        description: The weekly newsletter
        legal_basis: consent
        channels: [email]
        sources:
          crm_contacts: {column: optin_newsletter, granted: [yes, oui], withdrawn: [no, non]}
          eshop_customers: {field: consent_email}
        categories: [Email Marketing]     # Segment context.consent.categoryPreferences

``sources`` maps a column of a customer source's own data (``column``: as the source file or
table names it) or a field of the standard model (``field``: consent_email, consent_sms),
with the values that mean granted and withdrawn (other values state nothing).
``categories`` names the categories of the collector's events whose ``true``/``false`` grants
or withdraws the purpose.

Without ``consent.yml`` the standard model's two flags are two purposes: ``email_marketing``
(from ``consent_email``) and ``sms_marketing`` (from ``consent_sms``) of every customer
source that maps them, so projects written before purposes keep working as they did.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from passerelle.errors import Problems
from passerelle.project.models import SourceConfig, Strict, _check_name

CONSENT_FILE = "consent.yml"
LegalBasis = Literal["consent", "legitimate_interest", "contract", "legal_obligation",
                     "vital_interest", "public_task"]
# The standard model's consent fields and the purpose each becomes without consent.yml.
LEGACY_PURPOSES: dict[str, str] = {"email_marketing": "consent_email",
                                   "sms_marketing": "consent_sms"}
# An audience or destination without `purpose:` gets the one of its channel.
CHANNEL_PURPOSES: dict[str, str] = {"email": "email_marketing", "sms": "sms_marketing",
                                    "ads": "ad_audiences", "push": "push_notifications"}
# Staging's boolean vocabulary (staging/normalize.py), compared lower-cased and trimmed.
GRANTED = ["true", "yes", "oui", "1", "y", "o", "opt-in", "optin", "granted"]
WITHDRAWN = ["false", "no", "non", "0", "n", "opt-out", "optout", "withdrawn", "denied"]


_YAML_WORDS = {True: ["true", "yes", "on"], False: ["false", "no", "off"]}


class SourceMapping(Strict):
    """Where one customer source states a purpose: a column of its own data or a field of
    the standard model, and which values grant or withdraw it."""

    column: str | None = Field(None, description="Column of the source as it names it "
                                                 "(e.g. optin_newsletter)")
    field: Literal["consent_email", "consent_sms"] | None = Field(
        None, description="A consent field of the standard model, as staged")
    granted: list[str] = Field(default_factory=lambda: list(GRANTED),
                               description="Values that grant the purpose (case-insensitive)")
    withdrawn: list[str] = Field(default_factory=lambda: list(WITHDRAWN),
                                 description="Values that withdraw it (case-insensitive)")

    @field_validator("granted", "withdrawn", mode="before")
    @classmethod
    def _texts(cls, v: object) -> object:
        # YAML reads yes/no, true/false and on/off as booleans: which one was written is
        # lost, so a boolean stands for the three words it may have been
        if isinstance(v, list):
            return [w for x in v for w in (_YAML_WORDS[x] if isinstance(x, bool) else [str(x)])]
        return v

    @model_validator(mode="after")
    def _one_origin(self) -> SourceMapping:
        if (self.column is None) == (self.field is None):
            raise ValueError("give either `column` (the source's own column) or `field` "
                             "(consent_email or consent_sms)")
        both = {v.strip().lower() for v in self.granted} & {
            v.strip().lower() for v in self.withdrawn}
        if both:
            raise ValueError(f"values both grant and withdraw: {', '.join(sorted(both))}")
        return self


class PurposeConfig(Strict):
    """One purpose of processing."""

    description: str = ""
    legal_basis: LegalBasis = Field("consent", description="consent, legitimate_interest, "
                                    "contract, legal_obligation, vital_interest, public_task")
    channels: list[str] = Field(default_factory=list,
                                description="Channels it covers: email, sms, ads, web, push...")
    sources: dict[str, SourceMapping] = Field(
        default_factory=dict, description="Customer source -> where it states the purpose")
    categories: list[str] = Field(
        default_factory=list, description="Categories of the collector's "
        "context.consent.categoryPreferences that grant (true) or withdraw (false) it")


class ConsentConfig(Strict):
    """``consent.yml``."""

    purposes: dict[str, PurposeConfig] = Field(min_length=1,
                                               description="Purpose name -> its definition")
    _declared: bool = PrivateAttr(True)  # False: the defaults (no consent.yml)

    @property
    def declared(self) -> bool:
        return self._declared

    @field_validator("purposes")
    @classmethod
    def _names(cls, v: dict[str, PurposeConfig]) -> dict[str, PurposeConfig]:
        for name in v:
            _check_name(name)
        return v


def default_consent(sources: dict[str, SourceConfig]) -> ConsentConfig:
    """The purposes of a project without consent.yml: today's two flags."""
    purposes = {}
    for purpose, fld in LEGACY_PURPOSES.items():
        mapped = {s.name: SourceMapping(field=fld) for s in sources.values()
                  if s.entity == "customers" and fld in s.columns}
        purposes[purpose] = PurposeConfig(
            description=f"Marketing {'e-mails' if 'email' in fld else 'text messages'} "
                        f"(the standard model's {fld})",
            channels=["email" if "email" in fld else "sms"], sources=mapped)
    config = ConsentConfig(purposes=purposes)
    config._declared = False
    return config


def read_consent(root: Path, sources: dict[str, SourceConfig], problems: Problems,
                 leaves: object = None) -> ConsentConfig:
    """Read consent.yml (the defaults when absent); check its sources, and the purposes of
    the audiences and destinations of ``leaves`` (a bad one is a leaf problem and is left
    out: an audience is never sent under a purpose nobody declared)."""
    from passerelle.project.load import Located, parse_document, read_documents

    config = default_consent(sources)
    for doc in read_documents(root, CONSENT_FILE, problems):
        parsed = parse_document(ConsentConfig, doc, problems)
        if parsed is None:
            continue
        config = parsed
        at = Located(doc)
        for purpose, spec in parsed.purposes.items():
            for name in spec.sources:
                source = sources.get(name)
                if source is None or source.entity != "customers":
                    known = sorted(s.name for s in sources.values() if s.entity == "customers")
                    problems.add(doc.file, f"purposes.{purpose}.sources: '{name}' is not a "
                                 "customer source", at.line("purposes", purpose, "sources", name),
                                 f"customer sources: {', '.join(known) or 'none'}")
                elif spec.sources[name].field and spec.sources[name].field not in source.columns:
                    problems.add(doc.file, f"purposes.{purpose}.sources.{name}: the source does "
                                 f"not map {spec.sources[name].field}",
                                 at.line("purposes", purpose, "sources", name, "field"),
                                 "map the field in the source file, or use `column:`")
    if leaves is not None:
        _check_exits(root, config, leaves)
    return config


def declared_purposes(root: Path) -> set[str]:
    """The purpose names of a project (consent.yml's, else the defaults); consent.yml's own
    problems are reported by `passerelle validate`."""
    from passerelle.project.load import parse_document, read_documents

    quiet = Problems()
    for doc in read_documents(root, CONSENT_FILE, quiet):
        parsed = parse_document(ConsentConfig, doc, quiet)
        if parsed is not None:
            return set(parsed.purposes)
    return set(LEGACY_PURPOSES)


def audience_purpose(channel: str, purpose: str | None,
                     declared: Container[str] = ()) -> str | None:
    """The purpose an audience is sent under: its own, else its channel's (when it is a
    default purpose or one of ``declared``). None: an ads or push audience of a project
    that declares no such purpose keeps the rule it had before purposes (the marketing
    consent of each identifier)."""
    if purpose is not None:
        return purpose
    derived = CHANNEL_PURPOSES.get(channel)
    if derived in LEGACY_PURPOSES or derived in declared:
        return derived
    return None


def _check_exits(root: Path, config: ConsentConfig, leaves: object) -> None:
    from passerelle.project.leaves import skip as _skip
    from passerelle.project.yamlio import YamlSyntaxError, read_yaml

    defs = getattr(leaves, "segments", None)
    known = sorted(config.purposes)
    hint = (f"declared purposes: {', '.join(known)}" + ("" if config.declared else
            " (the defaults: add consent.yml to declare others)"))
    for name, audience in list(getattr(defs, "audiences", {}).items()):
        audience.purpose = audience_purpose(audience.channel, audience.purpose, config.purposes)
        if audience.purpose is None or audience.purpose in config.purposes:
            continue
        file, line = defs.origin[audience.segment]
        try:
            doc = read_yaml(root / file, file)
            items = doc.data.get("audiences") or []
            i = next(i for i, a in enumerate(items) if a.get("name") == name)
            line = doc.line_of(("audiences", i, "purpose"))
        except (YamlSyntaxError, OSError, StopIteration, AttributeError):
            pass
        leaves.problems.append(_problem(file, f"audience '{name}': unknown purpose "
                                        f"'{audience.purpose}'", line, hint))
        del defs.audiences[name]
        _skip(leaves, "audience", name, (file, line), f"its purpose '{audience.purpose}' is "
              "not declared", broken=True)
    for path in sorted([*root.glob("destinations/*.yml"), *root.glob("destinations/*.yaml")]):
        file = str(path.relative_to(root))
        try:
            doc = read_yaml(path, file)
        except (YamlSyntaxError, OSError):
            continue  # reported with the destinations' own problems
        purpose = doc.data.get("purpose") if isinstance(doc.data, dict) else None
        if isinstance(purpose, str) and purpose not in config.purposes:
            leaves.problems.append(_problem(file, f"unknown purpose '{purpose}'",
                                            doc.line_of(("purpose",)), hint))


def _problem(file: str, message: str, line: int | None, hint: str):
    from passerelle.errors import Problem

    return Problem(file, message, line, hint)


def check_source_columns(config: ConsentConfig, root: Path, sources: dict[str, SourceConfig],
                         available: dict[str, list[str]], problems: Problems) -> None:
    """`passerelle validate`: every ``column`` of consent.yml exists in its source
    (``available``: source -> its columns, for the sources that could be read)."""
    from passerelle.project.load import closest as _closest
    from passerelle.project.yamlio import YamlSyntaxError, read_yaml

    if not config.declared:
        return
    try:
        doc = read_yaml(root / CONSENT_FILE, CONSENT_FILE)
    except (YamlSyntaxError, OSError):
        return
    for purpose, spec in config.purposes.items():
        for name, mapping in spec.sources.items():
            columns = available.get(name)
            if mapping.column is None or columns is None or mapping.column in columns:
                continue
            problems.add(CONSENT_FILE, f"purposes.{purpose}.sources.{name}: column "
                         f"'{mapping.column}' is not in the source",
                         doc.line_of(("purposes", purpose, "sources", name, "column")),
                         _closest(mapping.column, columns) or f"columns: {', '.join(columns)}")
