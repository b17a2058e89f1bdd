"""``placements/*.yml`` and ``offers/*.yml``: where messages are shown, and the messages.

A **placement** is a slot an application fills (a home banner, a newsletter hero). It
declares the context values callers may pass, each with a type, so that a decision with a
wrong value is refused naming the field; its holdout, its caps across offers, and the
default experience (shown to the holdout, to unknown people, and when nothing is eligible)::

    name: home_banner
    description: Banner at the top of the home page
    channels: [web, app]
    context:
      device: {type: text, values: [mobile, desktop, tablet]}
      cart_value: number
    holdout_percent: 10
    caps: [{at_most: 5, per: 1d}]
    default:
      content: {title: "Our new collection", url: "https://shop.example.fr/new"}

A placement ranks its eligible offers by priority (``ranking: rules``, the default) or
learns which one works (``ranking: learned``): a Thompson-sampling bandit whose reward is
the event ``reward_event`` (``Offer Clicked`` by default), learnt separately for each of
the segments or context values ``learn_per`` names (see
:mod:`passerelle.personalize.bandit`)::

    ranking: learned
    reward_event: Offer Clicked
    learn_per: [shoe_lovers, bag_lovers]   # or {context: device}

An **offer** is one message: where it goes, who may get it, in which context, its content
templates, and how often::

    name: summer_shoes
    description: Summer shoes for shoe lovers
    placements: [home_banner]
    priority: 50
    consent: email
    eligibility: {segment: shoe_lovers}
    context: [{context: device, op: "=", value: mobile}]
    fields: [first_name]
    traits: [favourite_category]
    content:
      title: "{{ first_name }}, summer is here"
      url: https://shop.example.fr/shoes
    caps: [{at_most: 1, per: 1d}]
    budget: 10000

Checks that need the rest of the project (segments and traits exist, templates use only
their declared fields, rule values fit the context types) are in
:mod:`passerelle.personalize.validate`, whose :func:`load_offers` runs both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from passerelle.errors import Problems
from passerelle.project.models import Strict, _check_name
from passerelle.project.segments_models import Condition, _Comparison, every_minutes

ContextType = Literal["text", "number", "integer", "boolean"]
Consent = Literal["email", "sms", "ads", "none"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ContextField(Strict):
    """A value a caller may pass with a decision."""

    type: ContextType = Field(description="text, number, integer or boolean")
    values: list[str | int | float | bool] | None = Field(
        None, description="The only values accepted (e.g. [mobile, desktop])")
    required: bool = Field(False, description="A decision without it is refused")


class Cap(Strict):
    """At most ``at_most`` messages per person in each period of ``per``."""

    at_most: int = Field(ge=1, description="Messages allowed in one period")
    per: str = Field(description="Length of the period: 30m, 12h, 1d, 7d...")

    @field_validator("per")
    @classmethod
    def _per(cls, v: str) -> str:
        every_minutes(v)
        return v

    @property
    def minutes(self) -> int:
        return every_minutes(self.per)


class DefaultExperience(Strict):
    content: dict[str, str] = Field(min_length=1, description="Named templates (title, url, "
                                    "body...); they may use the context values only")


class LearnPerContext(Strict):
    """Learn separately for each value of one context value."""

    context: str = Field(description="A context value of the placement (e.g. device)")


class PlacementConfig(Strict):
    """``placements/<name>.yml``."""

    name: str = Field(description="Placement name, unique in the project (a-z, 0-9, _)")
    description: str = ""
    channels: list[str] | None = Field(None, description="Channels the placement is shown on "
                                       "(the `channel` context value must be one of them)")
    context: dict[str, ContextType | ContextField] = Field(
        default_factory=dict, description="Context values callers may pass: name -> type")
    holdout_percent: float = Field(10.0, ge=0, le=50, description="Share of people who always "
                                   "get the default experience, to measure the uplift")
    salt: str | None = Field(None, description="Seed of the holdout draw (default: the name)")
    max_messages: int = Field(1, ge=1, le=20, description="Messages returned, best first")
    caps: list[Cap] = Field(default_factory=list,
                            description="Caps per person across the offers of the placement")
    default: DefaultExperience
    ranking: Literal["rules", "learned"] = Field(
        "rules", description="rules: by priority; learned: a Thompson-sampling bandit")
    reward_event: str = Field("Offer Clicked", min_length=1, description="Track event that "
                              "rewards a message (with its decision_id), for learned ranking")
    learn_per: list[str] | LearnPerContext | None = Field(
        None, description="Learn per segment (a list: a person's first segment of it, others "
        "together) or per context value ({context: device}); absent: one for everyone")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @model_validator(mode="after")
    def _learning(self) -> PlacementConfig:
        if self.learn_per is not None and self.ranking != "learned":
            raise ValueError("learn_per needs `ranking: learned`")
        return self

    @field_validator("context")
    @classmethod
    def _names(cls, v: dict) -> dict:
        for name in v:
            _check_name(name)
            if name in BUILTIN_CONTEXT:
                raise ValueError(f"'{name}' is a built-in context value: do not declare it")
        return v

    @property
    def holdout_salt(self) -> str:
        return self.salt or self.name

    def context_fields(self) -> dict[str, ContextField]:
        """Declared and built-in context values with their types."""
        own = {k: ContextField(type=v) if isinstance(v, str) else v
               for k, v in self.context.items()}
        return {**BUILTIN_CONTEXT, **own}


# Values every decision has: the caller's channel, the placement, and the hour and weekday
# of the decision in the project's time zone.
BUILTIN_CONTEXT: dict[str, ContextField] = {
    "channel": ContextField(type="text"),
    "placement": ContextField(type="text"),
    "hour": ContextField(type="integer"),
    "weekday": ContextField(type="text", values=list(WEEKDAYS)),
}


class ContextRule(_Comparison):
    """A condition on a context value, in the segment language's operators."""

    context: str = Field(description="Context value: channel, placement, hour, weekday, or "
                                     "one the placement declares")


class Eligibility(Strict):
    """Who may get the offer: the members of a segment, or an inline condition."""

    segment: str | None = Field(None, description="A segment of segments/*.yml")
    where: Condition | None = Field(None, description="A condition in the segment language")

    @model_validator(mode="after")
    def _one(self) -> Eligibility:
        if (self.segment is None) == (self.where is None):
            raise ValueError("give exactly one of `segment` or `where`")
        return self


class OfferConfig(Strict):
    """``offers/<name>.yml``."""

    name: str = Field(description="Offer name, unique in the project (a-z, 0-9, _)")
    description: str = ""
    owner: str | None = None
    placements: list[str] = Field(min_length=1, description="Placements it may fill")
    channels: list[str] | None = Field(None, description="Only for these channels (any if "
                                       "absent)")
    priority: int = Field(0, description="Higher first among the eligible offers")
    consent: Consent | str = Field(
        description="Consent the person must have given: a purpose of consent.yml "
                    "(newsletter...), or email, sms, ads (an e-mail or SMS consent) or none")
    eligibility: Eligibility | None = Field(None, description="Absent: everyone")
    context: list[ContextRule] = Field(default_factory=list,
                                       description="Every rule must hold")
    fields: list[str] = Field(default_factory=list,
                              description="Golden-record fields the templates may use")
    traits: list[str] = Field(default_factory=list, description="Traits the templates may use")
    content: dict[str, str] = Field(min_length=1, description="Named templates: title, "
                                    "subject, body, url...")
    caps: list[Cap] = Field(default_factory=list, description="Caps per person for this offer")
    budget: int | None = Field(None, ge=1, description="At most this many sends in all")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))
    _consent = field_validator("consent")(classmethod(lambda cls, v: _check_name(v)))

    @model_validator(mode="after")
    def _no_clash(self) -> OfferConfig:
        both = sorted(set(self.fields) & set(self.traits))
        if both:
            raise ValueError(f"{', '.join(both)} is both a field and a trait: templates "
                             "could not tell them apart")
        return self


@dataclass
class OfferDefinitions:
    """The placements and offers of a project, each with the file (and line) it came from."""

    placements: dict[str, PlacementConfig] = field(default_factory=dict)
    offers: dict[str, OfferConfig] = field(default_factory=dict)
    origin: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)

    def offers_of(self, placement: str) -> list[OfferConfig]:
        """The offers of a placement, best first (priority, then name: a stable order)."""
        mine = [o for o in self.offers.values() if placement in o.placements]
        return sorted(mine, key=lambda o: (-o.priority, o.name))


def read_offer_files(root: Path, problems: Problems):
    """Parse the files; returns the definitions and the parsed documents (for lines)."""
    from passerelle.project.load import parse_document, read_documents

    defs = OfferDefinitions()
    docs = {}
    for kind, folder, model, into in (
            ("placement", "placements/*", PlacementConfig, defs.placements),
            ("offer", "offers/*", OfferConfig, defs.offers)):
        for doc in read_documents(root, folder, problems):
            doc.data.setdefault("name", Path(doc.file).stem)
            parsed = parse_document(model, doc, problems)
            if parsed is None:
                continue
            line = doc.line_of(("name",))
            if parsed.name in into:
                file, first = defs.origin[(kind, parsed.name)]
                problems.add(doc.file, f"{kind} name '{parsed.name}' is used twice", line,
                             f"first defined in {file}:{first}")
                continue
            into[parsed.name] = parsed
            defs.origin[(kind, parsed.name)] = (doc.file, line)
            docs[(kind, parsed.name)] = doc
    return defs, docs



__all__ = ["BUILTIN_CONTEXT", "WEEKDAYS", "Cap", "ContextField", "ContextRule",
           "DefaultExperience", "Eligibility", "LearnPerContext", "OfferConfig",
           "OfferDefinitions", "PlacementConfig"]
