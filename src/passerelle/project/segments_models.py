"""Pydantic models of ``segments/*.yml``: the segment language and audiences.

A condition is a small mapping told apart by its leading key, so that a file stays readable
in git review and a web builder produces it with no ceremony::

    {field: country, op: "=", value: FR}            # a profile column
    {trait: rfm_monetary, op: ">=", value: 4}       # a computed trait (traits table)
    {did: {event: Product Viewed, at_least: 3, in_last_days: 30, properties: {category: shoes}}}
    {bought: {category: shoes, at_least: 2, in_last_days: 365}}
    {in_segment: loyal_customers}
    {all: [...]}, {any: [...]}, {not: {...}}

The JSON Schema generated from these models (``segment_json_schema()``) is what editors and
the web builder validate against. Checks that need the rest of the project (does the field
exist, is the value the right type, do references form a cycle) live in
``passerelle.segments.validate``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from passerelle.project.models import Strict, _check_name

Op = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "contains",
             "starts_with", "is_null", "not_null"]
Scalar = Union[bool, int, float, date, str]  # noqa: UP007 - pydantic reads the order
Channel = Literal["email", "sms", "push", "ads"]

NO_VALUE_OPS = ("is_null", "not_null")
LIST_OPS = ("in", "not_in")
TEXT_OPS = ("contains", "starts_with")
ORDER_OPS = ("<", "<=", ">", ">=", "between")
MAX_DAYS = 36600
# A file's condition tree: checked on the parsed YAML before pydantic (or the compiler)
# recurses into it, so 200 nested `not:` is a located error, not a RecursionError.
MAX_DEPTH = 20
MAX_CONDITIONS = 500
_EVERY = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")


class _Comparison(Strict):
    op: Op = Field(description="=, !=, <, <=, >, >=, in, not_in, between, contains, "
                               "starts_with, is_null, not_null")
    value: Scalar | list[Scalar] | None = Field(
        None, description="A literal; a list for in/not_in; [low, high] for between; "
                          "absent for is_null/not_null")

    @model_validator(mode="after")
    def _value_fits_op(self) -> _Comparison:
        if self.op in NO_VALUE_OPS:
            if self.value is not None:
                raise ValueError(f"'{self.op}' takes no value: remove `value`")
        elif self.value is None:
            raise ValueError(f"'{self.op}' needs a `value`")
        elif self.op in LIST_OPS:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"'{self.op}' needs a non-empty list, e.g. [FR, BE]")
        elif self.op == "between":
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError("'between' needs [low, high]")
            low, high = self.value
            try:
                if low > high:  # type: ignore[operator]
                    raise ValueError(f"'between' range is empty: {low} > {high}")
            except TypeError:
                raise ValueError("'between' bounds must be of the same type") from None
        elif isinstance(self.value, list):
            raise ValueError(f"'{self.op}' compares with one value, not a list")
        return self


class FieldCondition(_Comparison):
    """A column of the golden record (``profiles``): country, birth_date, consent_email..."""

    field: str = Field(description="Column of the profiles table")


class TraitCondition(_Comparison):
    """A computed trait (``traits`` table), compared in the trait's own type."""

    trait: str = Field(description="Trait name (traits/*.yml, builtins' parts included)")


class _Window(Strict):
    at_least: int = Field(1, ge=1, le=1_000_000, description="Minimum number of times")
    in_last_days: int | None = Field(None, gt=0, le=MAX_DAYS,
                                     description="Only the last N days before the refresh")


class DidSpec(_Window):
    event: str = Field(description="Event name (track calls), e.g. 'Product Viewed'")
    properties: dict[str, bool | int | float | str] = Field(
        default_factory=dict, description="Event properties that must equal these values")

    @field_validator("event")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("event name is empty")
        return v


class BoughtSpec(_Window):
    category: str | None = Field(None, description="order_lines.category; absent: any order")


class DidCondition(Strict):
    """Did event X at least N times (in the last D days)."""

    did: DidSpec


class BoughtCondition(Strict):
    """Bought (in category C) at least N times (in the last D days); counts orders."""

    bought: BoughtSpec


class InSegmentCondition(Strict):
    """Is a member of another segment (computed live, cycles refused)."""

    in_segment: str


class AllCondition(Strict):
    all: list[Condition] = Field(min_length=1, description="Every condition holds (AND)")


class AnyCondition(Strict):
    any: list[Condition] = Field(min_length=1, description="At least one holds (OR)")


class NotCondition(Strict):
    not_: Condition = Field(alias="not", description="The condition does not hold")


# The tag of a condition is its leading key; tags are capitalised so that they never collide
# with a key of the file in error locations (``where.all.0.field`` names the key, not the tag).
_TAGS = (("all", "All"), ("any", "Any"), ("not", "Not"), ("in_segment", "InSegment"),
         ("field", "Field"), ("trait", "Trait"), ("did", "Did"), ("bought", "Bought"))
CONDITION_KEYS = tuple(k for k, _ in _TAGS)


def _tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, tag in _TAGS:
            if key in value:
                return tag
        return None
    return {AllCondition: "All", AnyCondition: "Any", NotCondition: "Not",
            InSegmentCondition: "InSegment", FieldCondition: "Field", TraitCondition: "Trait",
            DidCondition: "Did", BoughtCondition: "Bought"}.get(type(value))


Condition = Annotated[
    Annotated[AllCondition, Tag("All")] | Annotated[AnyCondition, Tag("Any")]
    | Annotated[NotCondition, Tag("Not")] | Annotated[InSegmentCondition, Tag("InSegment")]
    | Annotated[FieldCondition, Tag("Field")] | Annotated[TraitCondition, Tag("Trait")]
    | Annotated[DidCondition, Tag("Did")] | Annotated[BoughtCondition, Tag("Bought")],
    Discriminator(_tag, custom_error_type="condition",
                  custom_error_message="a condition starts with one of the keys "
                                       + ", ".join(CONDITION_KEYS)),
]


def condition_size(where: Any) -> tuple[int, int]:
    """Depth (all/any/not levels) and number of conditions of a raw condition tree, counted
    iteratively; shapes that are not conditions are left to pydantic."""
    deepest = count = 0
    todo = [(where, 0)]
    while todo:
        cond, depth = todo.pop()
        if not isinstance(cond, dict):
            continue
        count += 1
        deepest = max(deepest, depth)
        for key in ("all", "any"):
            if isinstance(cond.get(key), list):
                todo += [(c, depth + 1) for c in cond[key]]
        if "not" in cond:
            todo.append((cond["not"], depth + 1))
    return deepest, count


def every_minutes(text: str) -> int:
    """``15m`` / ``2h`` / ``1d`` -> minutes."""
    m = _EVERY.match(text)
    if not m:
        raise ValueError("write a duration like 15m, 2h or 1d")
    n, unit = int(m.group(1)), m.group(2)
    minutes = n * {"m": 1, "min": 1, "h": 60, "d": 1440}[unit]
    if minutes <= 0:
        raise ValueError("the refresh interval must be positive")
    return minutes


class AudienceConfig(Strict):
    """A segment sent to one channel, with consent, a reachable identifier and a holdout."""

    name: str = Field(description="Audience name, unique in the project")
    channel: Channel = Field(description="email, sms, push or ads (see docs/segments.md for "
                                         "the consent and identifier rule of each)")
    purpose: str | None = Field(None, description="Purpose of consent.yml the people must "
                                "have granted (default: the channel's: email_marketing, "
                                "sms_marketing, ad_audiences, push_notifications)")
    holdout_percent: float = Field(10.0, ge=0, le=50,
                                   description="Share of eligible people kept out of every "
                                               "send, to measure the campaign (default 10)")
    salt: str | None = Field(None, description="Seed of the holdout draw (default: the "
                                               "audience name); change it to redraw")
    description: str | None = None
    segment: str | None = Field(None, description="Filled in from the file's segment")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @property
    def holdout_salt(self) -> str:
        return self.salt or self.name


class SegmentConfig(Strict):
    """``segments/<name>.yml``: one segment, and the audiences built from it."""

    name: str = Field(description="Segment name, unique in the project (a-z, 0-9, _)")
    description: str = Field(description="Who is in it, in plain words")
    owner: str = Field(description="Team or person answerable for the definition")
    where: Condition = Field(description="The condition a person must meet")
    refresh_every: str = Field("1d", description="How often `passerelle run` refreshes the "
                                                 "memberships: 15m, 2h, 1d...")
    audiences: list[AudienceConfig] = Field(default_factory=list,
                                            description="Audiences built from this segment")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @field_validator("where", mode="before")
    @classmethod
    def _bounded(cls, v: Any) -> Any:
        depth, count = condition_size(v)
        if depth > MAX_DEPTH:
            raise ValueError(f"conditions are nested {depth} deep (all/any/not); at most "
                             f"{MAX_DEPTH}: move a part into its own segment and use "
                             "in_segment")
        if count > MAX_CONDITIONS:
            raise ValueError(f"{count} conditions; at most {MAX_CONDITIONS} in one segment: "
                             "use `in` with a list of values, or split the segment")
        return v

    @field_validator("refresh_every")
    @classmethod
    def _every(cls, v: str) -> str:
        every_minutes(v)
        return v

    @model_validator(mode="after")
    def _own_audiences(self) -> SegmentConfig:
        for audience in self.audiences:
            audience.segment = self.name
        return self

    @property
    def refresh_minutes(self) -> int:
        return every_minutes(self.refresh_every)


for _model in (AllCondition, AnyCondition, NotCondition, SegmentConfig):
    _model.model_rebuild()


def segment_json_schema() -> dict[str, Any]:
    """JSON Schema of a segment file (editors, the web builder)."""
    schema = SegmentConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
