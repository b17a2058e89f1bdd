"""Pydantic model of ``identity.yml``: how records become people.

IT declares deterministic keys (exact after normalisation), probabilistic comparisons
(Splink), the guards against over-merging, survivorship of the golden record, and pins
reviewed in git. The CLI and API add pins of their own, kept in the warehouse and audited.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from passerelle.project.models import Strict
from passerelle.project.paths import ProjectPath, confine

# Fields of the customers entity that identity may use.
IDENTITY_FIELDS = (
    "customer_id", "email", "phone", "first_name", "last_name", "birth_date", "address_line1",
    "address_line2", "postcode", "city", "country", "loyalty_card", "region", "national_id",
    "gender",
)
# A source's extra field (``extra_fields:`` of a customer source) as identity.yml names it.
EXTRA_FIELD = r"^extra_[a-z][a-z0-9_]{0,39}$"


def _identity_field(value: str) -> str:
    if value in IDENTITY_FIELDS or re.match(EXTRA_FIELD, value):
        return value
    close = difflib.get_close_matches(value, IDENTITY_FIELDS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ValueError(f"Input should be an identity field ({', '.join(IDENTITY_FIELDS)}) or "
                     f"extra_<name> of a source's extra_fields; {hint}got '{value}'")


IdentityField = Annotated[str, AfterValidator(_identity_field), WithJsonSchema({
    "anyOf": [{"enum": list(IDENTITY_FIELDS)}, {"type": "string", "pattern": EXTRA_FIELD}]})]
# Methods that fit a text extra field (its values are staged as text).
EXTRA_METHODS = ("exact", "name", "text")
# Consents are not survived field by field: the latest choice wins (identity/golden.py).
CONSENT_FIELDS: tuple[str, ...] = ("consent_email", "consent_sms")


class DeterministicKey(Strict):
    """Records that share this field's normalised value are the same person."""

    field: IdentityField = Field(description="A standard field, or extra_<name> of a source's "
                                             "extra_fields")
    sources: list[str] | None = Field(
        None, description="Only records of these sources (e.g. systems sharing one customer id)")
    max_names: int | None = Field(
        3, ge=1, description="A value seen with more distinct names than this is a shared key "
                             "(family e-mail, shop phone) and is not used; null: no guard")
    first_names_must_agree: bool = Field(
        False, description="Link two records sharing the value only when their first names "
                           "agree (equal once folded, a nickname, a one-letter typo, an initial, "
                           "or swapped with the last name): a couple giving one e-mail stays "
                           "two people. Names are then counted by first name for max_names, "
                           "and a record without a first name is linked only when every first "
                           "name seen with the value agrees")


class Comparison(Strict):
    """One field compared by the probabilistic model."""

    field: IdentityField = Field(description="A standard field, or extra_<name> of a source's "
                                             "extra_fields")
    method: Literal["exact", "name", "text", "date", "postcode", "address"] = Field(
        "exact", description="exact; name: typos (Jaro-Winkler) and nicknames; text: edit "
                             "distance; date: typos and day/month swaps; postcode: same "
                             "department; address: a street line that counts only as the "
                             "top level of the postcode comparison (same postcode and same "
                             "street), so one address is not counted twice")
    term_frequencies: bool = Field(
        False, description="An exact match on a rare value counts more than on a common one "
                           "(Splink's term-frequency adjustment): two Théodore agree more surely "
                           "than two Marie, and a default birth date shared by many records "
                           "counts little. Careful on last names when addresses are compared: "
                           "a family shares both. Every run is then a full run: new records "
                           "change the frequencies")


    @model_validator(mode="after")
    def _extra_is_text(self) -> Comparison:
        if self.field.startswith("extra_") and self.method not in EXTRA_METHODS:
            raise ValueError(f"{self.field} is an extra field (text): compare it with "
                             f"{', '.join(EXTRA_METHODS)}, not {self.method}")
        return self


class Training(Strict):
    max_pairs: int = Field(2_000_000, ge=10_000,
                           description="Random pairs sampled to estimate u-probabilities")
    em_blocking: list[list[str]] = Field(
        # not [postcode, last_name]: that pass teaches EM that a household is one person
        default_factory=lambda: [["birth_date"], ["first_name", "last_name"]],
        description="Blocking rules of the EM passes that estimate m-probabilities")
    seed: int = 42


class Probabilistic(Strict):
    enabled: bool = True
    threshold: float = Field(0.95, gt=0, lt=1,
                             description="Match probability above which two records are linked")
    comparisons: list[Comparison] = Field(default_factory=lambda: [
        Comparison(field="first_name", method="name"),
        Comparison(field="last_name", method="name"),
        Comparison(field="birth_date", method="date"),
        Comparison(field="postcode", method="postcode"),
        Comparison(field="address_line1", method="text"),
        Comparison(field="city", method="exact"),
    ])
    blocking: list[list[str]] | Literal["auto"] = Field(
        default_factory=lambda: [["last_name", "birth_date"], ["first_name", "birth_date"],
                                 ["last_name", "postcode"]],
        description="Candidate pairs: records equal on every field of at least one rule; "
                    "`auto`: Passerelle chooses the rules from the compared fields within "
                    "`comparison_budget` (see docs/identity-matching.md)")
    comparison_budget: int | None = Field(
        None, ge=10_000, le=5_000_000_000,
        description="With `blocking: auto`, most candidate pairs the rules may generate "
                    "(default: 200 x records + 1,000,000)")
    training: Training = Field(default_factory=Training)
    last_name_from_email: bool = Field(
        False, description="A record without a last name takes the one its e-mail address "
                           "spells beside its first name (marie.dupont@, dupont.marie@, "
                           "mariedupont@, mdupont@): sign-up forms often ask only a first name")
    first_name_from_email: bool = Field(
        False, description="A record without a first name takes both names from an e-mail "
                           "address of two words (marie.dupont@, marie_dupont85@; dupont.marie@ "
                           "is read swapped, which the model recognises): a newsletter sign-up "
                           "that asked only an e-mail")
    birth_year_from_email: bool = Field(
        False, description="A record without a birth date is compared with the other's birth "
                           "year through the two-digit year that ends its e-mail address "
                           "(marie.dupont85@, marie1985@): levels of the birth date comparison "
                           "of their own, whose weights training learns")
    model_path: ProjectPath = Field("identity/model.json",
                            description="Trained model, relative to the project (commit it)")

    @property
    def blocking_rules(self) -> list[list[str]]:
        """The rules written in identity.yml; none with ``blocking: auto`` (until chosen)."""
        return [] if self.blocking == "auto" else self.blocking

    def with_rules(self, rules: list[list[str]]) -> Probabilistic:
        """This configuration with ``rules`` as its blocking (``auto`` resolved)."""
        return self.model_copy(update={"blocking": [list(r) for r in rules]})

    def model_file(self, project_root: Path) -> Path:
        """The saved model's file, resolved and kept inside the project's allowed folders."""
        return confine(project_root, self.model_path, what="Splink model (model_path)")

    @model_validator(mode="after")
    def _fields_known(self) -> Probabilistic:
        compared = {c.field for c in self.comparisons}
        for rule in [*self.blocking_rules, *self.training.em_blocking]:
            for f in rule:
                if f not in IDENTITY_FIELDS and not re.match(EXTRA_FIELD, f):
                    raise ValueError(f"blocking field '{f}' is not an identity field "
                                     f"({', '.join(IDENTITY_FIELDS)})")
        if not compared:
            raise ValueError("give at least one comparison, or set enabled: false")
        methods = {(c.field, c.method) for c in self.comparisons}
        if any(m == "address" for _, m in methods) and ("postcode", "postcode") not in methods:
            raise ValueError("method 'address' is a level of the postcode comparison: "
                             "also compare {field: postcode, method: postcode}")
        return self


class Graph(Strict):
    max_cluster_size: int = Field(
        50, ge=2, description="A person with more records than this is cut along its weakest "
                              "links and reported")


Rule = Literal["source_priority", "most_recent", "most_frequent", "first_non_empty"]


class Survivorship(Strict):
    """Which value the golden record keeps for each field."""

    default: Rule = "most_recent"
    source_priority: list[str] = Field(
        default_factory=list, description="Most trusted source first")
    fields: dict[str, Rule] = Field(default_factory=dict, description="Per-field rule")


class Pin(Strict):
    """A decision by a person, which every run respects: ``source:record_id`` references."""

    kind: Literal["merge", "split"]
    records: list[str] = Field(min_length=2, max_length=2)
    reason: str = Field(min_length=3)
    author: str | None = None


class IdentityConfig(Strict):
    """``identity.yml``."""

    keys: list[DeterministicKey] = Field(default_factory=lambda: [
        DeterministicKey(field="email"), DeterministicKey(field="phone"),
        DeterministicKey(field="loyalty_card", max_names=None),
    ])
    probabilistic: Probabilistic = Field(default_factory=Probabilistic)
    graph: Graph = Field(default_factory=Graph)
    survivorship: Survivorship = Field(default_factory=Survivorship)
    pins: list[Pin] = Field(default_factory=list)
