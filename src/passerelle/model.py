"""The standard customer model: the tables every source maps to.

A source declares one ``entity`` and maps its columns to that entity's fields. Staging
turns each source into ``stg_<source>`` with exactly these columns (plus lineage and the
per-field validity flags), so everything downstream reads one shape whatever the origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a field is parsed and normalised during staging."""

    TEXT = "text"  # trimmed, inner whitespace collapsed, empty -> null
    CODE = "code"  # identifiers: trimmed, kept as typed (case matters)
    EMAIL = "email"  # syntax-checked, lower-cased
    PHONE = "phone"  # E.164 with the project's default region
    NAME = "name"  # person names: title case, accents kept
    POSTCODE = "postcode"
    COUNTRY = "country"  # ISO 3166-1 alpha-2
    DATE = "date"
    TIMESTAMP = "timestamp"
    DECIMAL = "decimal"  # amounts: decimal comma or point
    INTEGER = "integer"
    BOOLEAN = "boolean"  # consents: oui/non, yes/no, 1/0, true/false, opt-in/opt-out
    JSON = "json"  # event properties, context
    IDENTIFIER = "identifier"  # national / tax ids: spaces, dots, dashes, slashes dropped, upper
    GENDER = "gender"  # F, M or X from the words sources use (femme, male, Mme, w, divers...)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    description: str
    required: bool = False  # a row without it cannot be staged: it goes to quarantine


@dataclass(frozen=True)
class Entity:
    name: str
    description: str
    key: tuple[str, ...]  # what identifies a record of this entity within its source
    fields: tuple[Field, ...]
    event_time: str | None = None  # the field that says when the record happened / changed

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


def _f(name: str, kind: Kind, description: str, required: bool = False) -> Field:
    return Field(name, kind, description, required)


K = Kind
CUSTOMERS = Entity(
    "customers",
    "People as a source knows them: CRM contacts, e-shop accounts, loyalty members, sign-ups.",
    key=("customer_id",),
    event_time="updated_at",
    fields=(
        _f("customer_id", K.CODE, "The source's own identifier for the person", required=True),
        _f("email", K.EMAIL, "E-mail address"),
        _f("phone", K.PHONE, "Phone number, normalised to E.164 (+33612345678)"),
        _f("first_name", K.NAME, "First name"),
        _f("last_name", K.NAME, "Last name"),
        _f("birth_date", K.DATE, "Date of birth"),
        _f("address_line1", K.TEXT, "Street address"),
        _f("address_line2", K.TEXT, "Address complement"),
        _f("postcode", K.POSTCODE, "Postcode"),
        _f("city", K.TEXT, "City"),
        _f("country", K.COUNTRY, "Country, ISO 3166-1 alpha-2"),
        _f("loyalty_card", K.CODE, "Loyalty card number"),
        _f("region", K.TEXT, "Region, state, province or county of the address"),
        _f("national_id", K.IDENTIFIER, "National or tax identifier (social security, tax "
           "number...); hashed at staging when the source mapping says `hash: true`"),
        _f("gender", K.GENDER, "Gender as the source records it: F, M or X"),
        _f("consent_email", K.BOOLEAN, "Agreed to marketing e-mails"),
        _f("consent_sms", K.BOOLEAN, "Agreed to marketing text messages"),
        _f("consent_updated_at", K.TIMESTAMP, "When the consents were last given or withdrawn"),
        _f("created_at", K.TIMESTAMP, "When the source created the record"),
        _f("updated_at", K.TIMESTAMP, "When the source last changed the record"),
    ),
)
ORDERS = Entity(
    "orders",
    "Purchases: e-shop orders and store till tickets.",
    key=("order_id",),
    event_time="ordered_at",
    fields=(
        _f("order_id", K.CODE, "The source's own order or ticket identifier", required=True),
        _f("customer_id", K.CODE, "The buyer's identifier in the customer source"),
        _f("email", K.EMAIL, "The buyer's e-mail, when the order carries one"),
        _f("loyalty_card", K.CODE, "The loyalty card scanned at the till"),
        _f("ordered_at", K.TIMESTAMP, "When the order was placed", required=True),
        _f("amount", K.DECIMAL, "Order total, tax included", required=True),
        _f("currency", K.CODE, "ISO 4217 currency code"),
        _f("channel", K.CODE, "web, app, store"),
        _f("store_id", K.CODE, "Store identifier for till tickets"),
        _f("status", K.CODE, "paid, cancelled, refunded..."),
    ),
)
ORDER_LINES = Entity(
    "order_lines",
    "Lines of orders: what was bought.",
    key=("order_id", "line_number"),
    fields=(
        _f("order_id", K.CODE, "The order this line belongs to", required=True),
        _f("line_number", K.INTEGER, "Position of the line in the order", required=True),
        _f("product_id", K.CODE, "Product identifier"),
        _f("product_name", K.TEXT, "Product name"),
        _f("category", K.TEXT, "Product category"),
        _f("quantity", K.INTEGER, "Units bought"),
        _f("unit_price", K.DECIMAL, "Price of one unit, tax included"),
        _f("amount", K.DECIMAL, "Line total, tax included"),
    ),
)
EVENTS = Entity(
    "events",
    "Web and app events in the shape of the Segment Spec (track, page, identify...).",
    key=("message_id",),
    event_time="timestamp",
    fields=(
        _f("message_id", K.CODE, "Unique id of the event", required=True),
        _f("type", K.CODE, "track, page, screen, identify, group, alias", required=True),
        _f("event", K.TEXT, "Event name for track calls (Order Completed...)"),
        _f("user_id", K.CODE, "Known user identifier"),
        _f("anonymous_id", K.CODE, "Device or cookie identifier"),
        _f("email", K.EMAIL, "E-mail sent with identify calls"),
        _f("timestamp", K.TIMESTAMP, "When the event happened", required=True),
        _f("channel", K.CODE, "Marketing channel of the visit (utm_medium or derived)"),
        _f("campaign_id", K.CODE, "Campaign of the visit (utm_campaign)"),
        _f("properties", K.JSON, "Event properties"),
        _f("context", K.JSON, "Event context (page, device, campaign)"),
    ),
)
AD_SPEND = Entity(
    "ad_spend",
    "Daily spend per channel and campaign.",
    key=("date", "channel", "campaign_id"),
    event_time="date",
    fields=(
        _f("date", K.DATE, "Day of the spend", required=True),
        _f("channel", K.CODE, "Channel (search, social, display, email...)", required=True),
        _f("campaign_id", K.CODE, "Campaign identifier", required=True),
        _f("spend", K.DECIMAL, "Amount spent", required=True),
        _f("currency", K.CODE, "ISO 4217 currency code"),
        _f("impressions", K.INTEGER, "Impressions"),
        _f("clicks", K.INTEGER, "Clicks"),
    ),
)
CAMPAIGN_SENDS = Entity(
    "campaign_sends",
    "Messages sent to people: e-mails, text messages, pushes.",
    key=("send_id",),
    event_time="sent_at",
    fields=(
        _f("send_id", K.CODE, "Unique identifier of the send", required=True),
        _f("campaign_id", K.CODE, "Campaign identifier", required=True),
        _f("channel", K.CODE, "email, sms, push", required=True),
        _f("customer_id", K.CODE, "Recipient's identifier in the customer source"),
        _f("email", K.EMAIL, "Recipient's e-mail"),
        _f("phone", K.PHONE, "Recipient's phone"),
        _f("sent_at", K.TIMESTAMP, "When it was sent", required=True),
        _f("opened_at", K.TIMESTAMP, "When it was first opened"),
        _f("clicked_at", K.TIMESTAMP, "When it was first clicked"),
    ),
)

EXTRA_PREFIX = "extra_"  # staged column of an extra field: extra_<name>


def with_extra_fields(entity: Entity, names: list[str]) -> Entity:
    """``entity`` with a text field ``extra_<name>`` for each extra field a source maps
    (a column that is not a standard field but that identity may compare)."""
    if not names:
        return entity
    extra = tuple(Field(EXTRA_PREFIX + n, Kind.TEXT, f"Extra field {n}") for n in names)
    return Entity(entity.name, entity.description, entity.key, entity.fields + extra,
                  entity.event_time)


ENTITIES: dict[str, Entity] = {
    e.name: e for e in (CUSTOMERS, ORDERS, ORDER_LINES, EVENTS, AD_SPEND, CAMPAIGN_SENDS)
}


# Views that gather the staged tables of every source of one entity.
ENTITY_VIEWS = {
    "customers": "customer_records",
    "orders": "orders",
    "order_lines": "order_lines",
    "events": "events",
    "ad_spend": "ad_spend",
    "campaign_sends": "campaign_sends",
}
