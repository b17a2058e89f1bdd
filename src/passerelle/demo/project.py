"""The demo project's YAML files: ``passerelle.yml``, one ``sources/*.yml`` a source, checks.

Every file is built as plain data, validated by the project's pydantic models before it
is written (a demo that does not validate is a bug here, not the user's problem), and
dumped with a fixed key order so the bytes only depend on the seed and the date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from passerelle.demo.eshop_mysql import CUSTOMERS_VIEW_NAME
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.models import ChecksFile, ProjectConfig, SourceConfig

DMY = "%d/%m/%Y"
DMY_HM = "%d/%m/%Y %H:%M"

_CUSTOMER_MAPPINGS: dict[str, dict[str, Any]] = {
    "crm_contacts": {
        "customer_id": "contact_id", "first_name": "first_name", "last_name": "last_name",
        "email": "email", "phone": "phone", "birth_date": "birth_date",
        "address_line1": "street", "address_line2": "street_2", "postcode": "postal_code",
        "city": "city", "country": "country", "consent_email": "consent_email",
        "consent_sms": "consent_sms", "created_at": "created_at", "updated_at": "updated_at",
    },
    "eshop_customers": {
        "customer_id": "id_customer", "first_name": "firstname", "last_name": "lastname",
        "email": "email", "birth_date": "birthday", "consent_email": "newsletter",
        "address_line1": "address1", "address_line2": "address2", "postcode": "postcode",
        "city": "city", "phone": "phone_mobile", "country": {"value": "FR"},
        "created_at": "date_add", "updated_at": "date_upd",
    },
    "loyalty_members": {
        "customer_id": "N° carte", "loyalty_card": "N° carte", "first_name": "Prénom",
        "last_name": "Nom", "birth_date": {"column": "Date de naissance", "format": DMY},
        "address_line1": "Adresse", "address_line2": "Complément",
        "postcode": "Code postal", "city": "Ville", "country": {"value": "FR"},
        "phone": "Téléphone", "email": "E-mail", "consent_email": "Optin e-mail",
        "consent_sms": "Optin SMS",
        "created_at": {"column": "Date d'adhésion", "format": DMY},
        "updated_at": {"column": "Dernière modification", "format": DMY_HM},
    },
    "newsletter_signups": {
        "customer_id": "ID contact", "email": "E-mail", "first_name": "Prénom",
        "postcode": "Code postal", "country": {"value": "FR"}, "consent_email": "Consentement",
        "created_at": {"column": "Date d'inscription", "format": DMY},
        "consent_updated_at": {"column": "Date d'inscription", "format": DMY},
    },
}  # fmt: skip

_OTHER_MAPPINGS: dict[str, dict[str, Any]] = {
    "eshop_orders": {
        "order_id": "id_order", "customer_id": "id_customer", "ordered_at": "date_add",
        "amount": "total_paid_tax_incl", "status": "current_state",
        "currency": {"value": "EUR"}, "channel": {"value": "web"},
    },
    "eshop_order_lines": {
        "order_id": "id_order", "line_number": "id_order_detail", "product_id": "product_id",
        "product_name": "product_name", "category": "category_name",
        "quantity": "product_quantity", "unit_price": "unit_price_tax_incl",
        "amount": "total_price_tax_incl",
    },
    "store_tickets": {
        "order_id": "N° ticket", "ordered_at": {"column": "Date", "format": DMY_HM},
        "store_id": "Magasin", "loyalty_card": "N° carte fidélité",
        "customer_id": "N° carte fidélité", "amount": "Montant TTC",
        "currency": {"value": "EUR"}, "channel": {"value": "store"},
    },
    "web_events": {
        "message_id": "messageId", "type": "type", "event": "event", "user_id": "userId",
        "anonymous_id": "anonymousId", "email": "email", "timestamp": "timestamp",
        "channel": "channel", "campaign_id": "campaign", "properties": "properties",
        "context": "context",
    },
    "ad_spend": {
        "date": "date", "channel": "channel", "campaign_id": "campaign_id", "spend": "spend",
        "currency": "currency", "impressions": "impressions", "clicks": "clicks",
    },
    "campaign_sends": {
        "send_id": "send_id", "campaign_id": "campaign_id", "channel": "channel",
        "customer_id": "contact_id", "email": "email", "phone": "phone",
        "sent_at": "sent_at", "opened_at": "opened_at", "clicked_at": "clicked_at",
    },
}  # fmt: skip
MAPPINGS = {**_CUSTOMER_MAPPINGS, **_OTHER_MAPPINGS}

_FRENCH = {"type": "csv", "delimiter": ";", "encoding": "cp1252", "decimal": ","}
_UTF8 = {"type": "csv", "delimiter": ",", "encoding": "utf-8", "decimal": "."}
ESHOP_TABLES = {"eshop_customers": CUSTOMERS_VIEW_NAME, "eshop_orders": "ps_orders",
                "eshop_order_lines": "ps_order_detail"}
ESHOP_INCREMENTAL = {CUSTOMERS_VIEW_NAME: "date_upd", "ps_orders": "date_upd",
                     "ps_order_detail": "id_order_detail"}
PASSWORD_ENV = "PASSERELLE_ESHOP_PASSWORD"

SOURCES: dict[str, dict[str, Any]] = {
    "crm_contacts": {
        "entity": "customers", "owner": "Relation client (CRM team)",
        "description": "CRM contacts export (UTF-8, comma): people the customer service knows",
        "connector": {**_UTF8, "path": "data/crm_contacts.csv"},
    },
    "eshop_customers": {
        "entity": "customers", "owner": "E-commerce",
        "description": "PrestaShop customer accounts with their latest delivery address "
                       f"(view {CUSTOMERS_VIEW_NAME}: ps_customer joined to ps_address)",
    },
    "eshop_orders": {
        "entity": "orders", "owner": "E-commerce", "customer_source": "eshop_customers",
        "description": "PrestaShop orders (ps_orders); current_state 6 = cancelled, 7 = refunded",
    },
    "eshop_order_lines": {
        "entity": "order_lines", "owner": "E-commerce",
        "description": "PrestaShop order lines (ps_order_detail)",
    },
    "loyalty_members": {
        "entity": "customers", "owner": "Magasins (retail operations)",
        "description": "Loyalty card members, till system export (cp1252, semicolon)",
        "connector": {**_FRENCH, "path": "data/store/loyalty_members.csv"},
    },
    "store_tickets": {
        "entity": "orders", "owner": "Magasins (retail operations)",
        "customer_source": "loyalty_members",
        "description": "Till tickets of the 12 stores; the loyalty card is scanned on some",
        "connector": {**_FRENCH, "path": "data/store/tickets.csv"},
    },
    "newsletter_signups": {
        "entity": "customers", "owner": "Marketing CRM",
        "description": "Newsletter sign-ups exported from the e-mailing tool (cp1252, semicolon)",
        "connector": {**_FRENCH, "path": "data/newsletter/inscriptions.csv"},
    },
    "web_events": {
        "entity": "events", "owner": "Digital analytics", "customer_source": "eshop_customers",
        "description": "Web and app events, Segment-Spec JSON lines, one file a month",
        "connector": {"type": "jsonl", "path": "data/events/events-*.jsonl"},
    },
    "ad_spend": {
        "entity": "ad_spend", "owner": "Acquisition",
        "description": "Daily paid media spend per channel and campaign (EUR)",
        "connector": {**_UTF8, "path": "data/marketing/ad_spend.csv"},
    },
    "campaign_sends": {
        "entity": "campaign_sends", "owner": "Marketing CRM", "customer_source": "crm_contacts",
        "description": "E-mail and SMS campaign sends with opens and clicks",
        "connector": {**_UTF8, "path": "data/marketing/campaign_sends.csv"},
    },
}  # fmt: skip


def source_configs(eshop_mysql: dict | None) -> dict[str, dict[str, Any]]:
    out = {}
    for name, spec in SOURCES.items():
        doc: dict[str, Any] = {"name": name, "entity": spec["entity"],
                               "description": spec["description"], "owner": spec["owner"]}
        if name in ESHOP_TABLES:
            table = ESHOP_TABLES[name]
            if eshop_mysql is None:
                doc["connector"] = {"type": "parquet", "path": f"data/eshop/{table}.parquet"}
            else:
                doc["connector"] = _mysql(eshop_mysql, table)
                doc["incremental"] = {"key": ESHOP_INCREMENTAL[table]}
        else:
            doc["connector"] = dict(spec["connector"])
        doc["columns"] = MAPPINGS[name]
        if "customer_source" in spec:
            doc["customer_source"] = spec["customer_source"]
        SourceConfig.model_validate(doc)
        out[name] = doc
    return out


def _mysql(conn: dict, table: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "mysql", "host": str(conn.get("host", "127.0.0.1")),
                           "port": int(conn.get("port", 3306)),
                           "user": str(conn.get("user", "root"))}
    if conn.get("password"):
        out["password"] = "${" + PASSWORD_ENV + "}"  # never a literal secret in the project
    out["database"] = str(conn["database"])
    out["table"] = table
    return out


def project_config() -> dict[str, Any]:
    doc = {"name": "Maison Lumière (démo)",
           "engine": {"type": "duckdb", "path": "warehouse.duckdb"},
           "timezone": "Europe/Paris", "currency": "EUR", "default_region": "FR"}
    ProjectConfig.model_validate(doc)
    return doc


def checks(counts: dict[str, int]) -> dict[str, Any]:
    owner = "Data team"
    items: list[dict[str, Any]] = [
        {"type": "not_null", "source": "crm_contacts", "column": "customer_id"},
        {"type": "unique", "source": "crm_contacts", "column": "customer_id"},
        {"type": "unique", "source": "eshop_orders", "column": "order_id"},
        {"type": "unique", "source": "store_tickets", "column": "order_id"},
        {"type": "accepted_values", "source": "store_tickets", "column": "channel",
         "values": ["store"]},
        {"type": "accepted_values", "source": "campaign_sends", "column": "channel",
         "values": ["email", "sms"]},
        {"type": "relationships", "source": "eshop_orders", "column": "customer_id",
         "to": "eshop_customers", "field": "customer_id"},
        {"type": "row_count", "source": "crm_contacts",
         "min": max(1, counts.get("crm_contacts", 0) // 2), "max_change": 0.5},
        {"type": "row_count", "source": "web_events", "min": 1},
        {"type": "freshness", "source": "web_events", "column": "timestamp",
         "max_age_hours": 72, "severity": "warn",
         "description": "The demo ends yesterday: regenerate it when this warns"},
        {"type": "freshness", "source": "store_tickets", "column": "ordered_at",
         "max_age_hours": 96, "severity": "warn"},
    ]  # fmt: skip
    for item in items:
        item.setdefault("owner", owner)
    doc = {"checks": items}
    ChecksFile.model_validate(doc)
    return doc


IDENTITY_YML = """\
# How records become people. Reference: docs/identity-matching.md and docs/profiles.md.
keys:                       # exact matches after normalisation
  - field: email
    max_names: 2            # an address seen with more names is shared (a family): not used
    first_names_must_agree: true   # a couple giving one address stays two people
  - field: phone
    max_names: 2
    first_names_must_agree: true
  - field: loyalty_card
    max_names: null
probabilistic:              # Splink, for records without a shared key
  enabled: true
  threshold: 0.9            # measured on the demo's truth: docs/identity-matching.md
  last_name_from_email: true  # newsletter sign-ups: marie.dupont@... gives the last name
  first_name_from_email: true  # no first name either: marie.dupont@ gives both
  comparisons:
    # a rare name counts more than a common one; every run is then a full run
    - {field: first_name, method: name, term_frequencies: true}
    - {field: last_name, method: name, term_frequencies: true}
    - {field: birth_date, method: date}
    - {field: postcode, method: postcode}
    - {field: address_line1, method: address}  # same street only counts with the postcode
    - {field: city, method: exact}
  blocking:
    - [last_name, birth_date]
    - [first_name, birth_date]
    - [last_name, postcode]
    - [first_name, postcode]
    - [birth_date, postcode]  # names swapped and mistyped: the birth date and address agree
  training:
    em_blocking: [[birth_date], [first_name, last_name]]
graph:
  max_cluster_size: 50
survivorship:
  default: most_recent
  source_priority: [crm_contacts, eshop_customers, loyalty_members, newsletter_signups]
  fields:
    first_name: most_frequent
    last_name: most_frequent
    birth_date: source_priority
"""


TRAITS_YML = """\
# Computed traits on every person. Reference: docs/traits.md.
traits:
  - name: orders_90d
    description: Commandes passées ces 90 derniers jours, web et magasin
    owner: CRM team
    type: aggregate
    entity: orders
    function: count
    window_days: 90
  - name: total_spend
    description: Dépense sur toutes les commandes ni annulées ni remboursées (EUR)
    owner: Finance
    type: aggregate
    entity: orders
    function: sum
    column: amount
    where: "status IS NULL OR status NOT IN ('cancelled', 'refunded')"
  - name: last_purchase
    description: Date de la dernière commande
    owner: CRM team
    type: aggregate
    entity: orders
    function: max
    column: ordered_at
  - name: favourite_category
    description: Catégorie la plus achetée
    owner: Merchandising
    type: builtin
    builtin: favourite_category
  - name: favourite_channel
    description: Canal (web, app, magasin) le plus utilisé pour acheter
    owner: CRM team
    type: builtin
    builtin: favourite_channel
  - name: days_since_last_visit
    description: Jours entiers depuis le dernier événement web ou app
    owner: Digital analytics
    type: builtin
    builtin: days_since_last_visit
    history: false
  - name: rfm
    description: Scores RFM en quintiles (555 = meilleurs clients)
    owner: CRM team
    type: builtin
    builtin: rfm
  - name: clv
    description: Dépense attendue sur les 12 prochains mois (BG/NBD x Gamma-Gamma)
    owner: Data team
    type: builtin
    builtin: clv
    horizon_days: 365
  - name: churn_risk
    description: Probabilité que le client ait cessé d'acheter (1 - P(actif), BG/NBD)
    owner: Data team
    type: builtin
    builtin: churn_risk
"""


METRICS_YML = """\
# The shared glossary of metrics. Reference: docs/metrics.md.
semantic_models:
  - name: orders
    description: Purchases from the e-shop and the store tills
    model: orders
    defaults:
      agg_time_dimension: ordered_at
    entities:
      - {name: order, type: primary, expr: order_id}
    measures:
      - {name: revenue, agg: sum, expr: amount}
      - {name: order_count, agg: count, expr: order_id}
    dimensions:
      - {name: ordered_at, type: time, type_params: {time_granularity: day}}
      - {name: channel, type: categorical}
      - {name: source, type: categorical, expr: _source}
  - name: ad_spend
    description: Paid media spend per day, channel and campaign
    model: ad_spend
    defaults:
      agg_time_dimension: date
    entities:
      - {name: spend_line, type: primary, expr: "campaign_id || '|' || channel"}
    measures:
      - {name: spend, agg: sum, expr: spend}
      - {name: clicks, agg: sum, expr: clicks}
    dimensions:
      - {name: date, type: time, type_params: {time_granularity: day}}
      - {name: media, type: categorical, expr: channel}
      - {name: campaign, type: categorical, expr: campaign_id}
metrics:
  - name: revenue
    type: simple
    type_params: {measure: revenue}
    owner: Finance
    definition: Chiffre d'affaires TTC de toutes les commandes (web, appli, magasins).
    synonyms: [CA, chiffre d'affaires]
    status: approved
  - name: orders
    type: simple
    type_params: {measure: order_count}
    owner: Finance
    definition: Nombre de commandes et de tickets de caisse.
    status: approved
  - name: aov
    type: ratio
    type_params: {numerator: revenue, denominator: orders}
    owner: Finance
    definition: Panier moyen TTC (chiffre d'affaires / nombre de commandes).
    synonyms: [panier moyen]
    status: approved
  - name: revenue_mtd
    type: cumulative
    type_params: {measure: revenue, grain_to_date: month}
    owner: Finance
    definition: Chiffre d'affaires cumulé depuis le début du mois.
    status: draft
  - name: media_spend
    type: simple
    type_params: {measure: spend}
    owner: Acquisition
    definition: Dépenses média payantes (search, social, display, affiliation), en euros.
    status: approved
  - name: cost_per_click
    type: ratio
    type_params: {numerator: media_spend, denominator: media_clicks}
    owner: Acquisition
    definition: Coût moyen d'un clic payé.
    status: draft
  - name: media_clicks
    type: simple
    type_params: {measure: clicks}
    owner: Acquisition
    definition: Clics sur les publicités payantes.
    status: approved
"""


def experiment_yml(exp_id: str, description: str, owner: str) -> str:
    """One planted A/B test as ``experiments/<id>.yml`` (metric as in truth/effects.csv)."""
    return f"""\
# A/B test read by `passerelle experiment`. Reference: docs/measurement.md.
name: {exp_id}
description: {description}
owner: {owner}
variants:
  - {{name: control, weight: 50}}
  - {{name: treatment, weight: 50}}
exposure: {{event: Experiment Viewed, experiment_property: experiment_id,
           variant_property: variation_id}}
primary_metric: {{name: web_conversion_14d, type: conversion, window_days: 14, channels: [web]}}
guardrails:
  - {{name: web_revenue_14d, type: revenue, window_days: 14, channels: [web]}}
mde: 0.10
"""


SEGMENTS_YML = {
    "best_customers.yml": """\
# Segments: who marketing wants to reach. Reference: docs/segments.md.
description: Best customers (RFM) who bought in the last 90 days
owner: CRM team
refresh_every: 1d
where:
  all:
    - trait: orders_90d
      op: ">="
      value: 1
    - trait: total_spend
      op: ">="
      value: 300
audiences:
  - name: best_customers_email
    channel: email
    holdout_percent: 10
""",
    "lapsed_home_buyers.yml": """\
description: Bought home decoration before, not in the last 60 days, still visiting the site
owner: Merchandising
refresh_every: 1d
where:
  all:
    - bought: {category: Décoration}
    - not:
        bought: {category: Décoration, in_last_days: 60}
    - did: {event: Product Viewed, at_least: 1, in_last_days: 30}
audiences:
  - name: lapsed_home_sms
    channel: sms
""",
}
DESTINATIONS_YML = {
    "brevo.yml": """\
# Where audiences go. Reference: docs/activation.md.
type: csv
format: brevo
path: exports/{audience}-{date}.csv
attributes:
  VILLE: city
""",
}


def dump(doc: dict[str, Any], comment: str = "") -> str:
    head = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def write_project(project_dir: Path, eshop_mysql: dict | None, counts: dict[str, int],
                  end_date: str) -> None:
    (project_dir / "sources").mkdir(parents=True, exist_ok=True)
    (project_dir / "checks").mkdir(parents=True, exist_ok=True)
    for old in (project_dir / "sources").glob("*.yml"):
        old.unlink()
    (project_dir / "passerelle.yml").write_text(
        dump(project_config(), "Demo project generated by `passerelle demo`."), "utf-8")
    for name, doc in source_configs(eshop_mysql).items():
        (project_dir / "sources" / f"{name}.yml").write_text(dump(doc), "utf-8")
    (project_dir / "checks" / "quality.yml").write_text(
        dump(checks(counts), "Data-quality checks run after staging."), "utf-8")
    IdentityConfig.model_validate(yaml.safe_load(IDENTITY_YML))
    (project_dir / "identity.yml").write_text(IDENTITY_YML, "utf-8")
    (project_dir / "traits").mkdir(exist_ok=True)
    (project_dir / "traits" / "customer.yml").write_text(TRAITS_YML, "utf-8")
    for folder, files in (("segments", SEGMENTS_YML), ("destinations", DESTINATIONS_YML)):
        (project_dir / folder).mkdir(exist_ok=True)
        for name, text in files.items():
            (project_dir / folder / name).write_text(text, "utf-8")
    (project_dir / "metrics").mkdir(exist_ok=True)
    (project_dir / "metrics" / "sales.yml").write_text(METRICS_YML, "utf-8")
    (project_dir / "experiments").mkdir(exist_ok=True)
    from passerelle.demo.activity import EXPERIMENTS
    from passerelle.project.experiments_models import ExperimentConfig

    for exp in EXPERIMENTS:
        text = experiment_yml(exp.id, exp.description.split(" (")[0], "E-commerce")
        ExperimentConfig.model_validate(yaml.safe_load(text))
        (project_dir / "experiments" / f"{exp.id}.yml").write_text(text, "utf-8")
    (project_dir / "README.md").write_text(readme(eshop_mysql, end_date), "utf-8")


def readme(eshop_mysql: dict | None, end_date: str) -> str:
    where = (f"MariaDB view `{CUSTOMERS_VIEW_NAME}` (`ps_customer` with its `ps_address`), "
             f"tables `ps_orders`, `ps_order_detail` in database `{eshop_mysql['database']}`"
             if eshop_mysql else "Parquet files in `data/eshop/` (customers: the export of "
             f"the view `{CUSTOMERS_VIEW_NAME}`, accounts with their delivery address)")
    return f"""# Maison Lumière — Passerelle demo project

A fictitious French home & fashion retailer: 12 stores, an e-shop (PrestaShop), a loyalty
programme, a newsletter, web tracking, paid media and CRM campaigns. Data ends on {end_date}.

| source | what | file |
|---|---|---|
| `crm_contacts` | CRM contacts (UTF-8, `,`) | `data/crm_contacts.csv` |
| `eshop_customers`, `eshop_orders`, `eshop_order_lines` | PrestaShop shop | {where} |
| `loyalty_members` | loyalty cards, till export (cp1252, `;`) | `data/store/loyalty_members.csv` |
| `store_tickets` | till tickets, decimal commas, card on some | `data/store/tickets.csv` |
| `newsletter_signups` | sign-ups (cp1252, `;`) | `data/newsletter/inscriptions.csv` |
| `web_events` | Segment-Spec events, one file a month | `data/events/events-YYYY-MM.jsonl` |
| `ad_spend` | daily spend per channel and campaign | `data/marketing/ad_spend.csv` |
| `campaign_sends` | e-mail and SMS sends, opens, clicks | `data/marketing/campaign_sends.csv` |

The same person appears in several sources with typos, nicknames, old addresses and other
e-mails, as in real life; a few till lines are broken on purpose (quarantine). The ground
truth (who is who, planted campaign and test effects) is in the `truth/` folder beside this
project, never read by the pipeline. Run `passerelle run` here to load and stage everything.
"""
