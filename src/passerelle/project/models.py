"""Pydantic models of the project files: ``passerelle.yml``, ``sources/*.yml``, ``checks/*.yml``.

Unknown keys are errors (a typo must never be silently ignored); kinds of engine,
connector and check are told apart by their ``type`` field. The JSON Schema that editors
use for completion is generated from these models (``passerelle schema``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from passerelle.model import ENTITIES, EXTRA_PREFIX
from passerelle.project.paths import ProjectPath
from passerelle.project.sso_models import SsoConfig

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must start with a lower-case letter and use only a-z, 0-9 and _ (63 chars max)"
        )
    return value


# ----------------------------------------------------------------------------- engines
class DuckDBEngineConfig(Strict):
    """Embedded DuckDB file inside the project (the default)."""

    type: Literal["duckdb"] = "duckdb"
    path: ProjectPath = Field("warehouse.duckdb",
                              description="Database file, relative to the project")
    threads: int | None = Field(None, ge=1, description="Worker threads (default: all cores)")
    memory_limit: str | None = Field(None, description="e.g. '4GB' (default: DuckDB's 80% of RAM)")


class PostgresEngineConfig(Strict):
    """A PostgreSQL database; Passerelle's tables live in one schema."""

    type: Literal["postgres"]
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: SecretStr | None = Field(None, description="Use ${ENV_VAR}, never a literal")
    database: str = "postgres"
    schema_: str = Field("passerelle", alias="schema", description="Schema holding the tables")

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str) -> str:
        return _check_name(v)


_SPARK_SETTING = re.compile(r"^spark\.[A-Za-z0-9_.\-]{1,200}$")


class SparkEngineConfig(Strict):
    """Apache Spark: local mode by default, a cluster (``master``) or Spark Connect
    (``connect_url``) in production. Tables are Parquet folders in ``warehouse``."""

    type: Literal["spark"]
    master: str = Field("local[2]", max_length=500,
                        description="Spark master: local[N], spark://host:7077, yarn, k8s://...")
    connect_url: SecretStr | None = Field(
        None, description="Spark Connect server (sc://host:15002/;token=...); replaces master. "
                          "Use ${ENV_VAR} when it holds a token")
    warehouse: ProjectPath = Field(".passerelle/spark-warehouse",
                                   description="Folder of the Parquet tables, relative to the "
                                               "project (a shared file system on a cluster)")
    app_name: str = Field("passerelle", max_length=100, description="Spark application name")
    settings: dict[str, str | int | float | bool] = Field(
        default_factory=dict, max_length=200,
        description="Spark settings passed through, e.g. spark.sql.shuffle.partitions: 8")

    @field_validator("master")
    @classmethod
    def _master(cls, v: str) -> str:
        if not re.match(r"^(local(\[(\d+|\*)\])?|spark://\S+|yarn|k8s://\S+|mesos://\S+)$", v):
            raise ValueError("must be local, local[N], local[*], spark://host:port, yarn or "
                             "k8s://...")
        return v

    @field_validator("settings")
    @classmethod
    def _settings(cls, v: dict[str, str | int | float | bool]) -> dict:
        for key in v:
            if not _SPARK_SETTING.match(key):
                raise ValueError(f"{key!r} is not a Spark setting (spark.<name>)")
        return v

    @field_validator("connect_url")
    @classmethod
    def _connect(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith("sc://"):
            raise ValueError("a Spark Connect URL starts with sc://")
        return v


EngineConfig = Annotated[DuckDBEngineConfig | PostgresEngineConfig | SparkEngineConfig,
                         Field(discriminator="type")]


class RetentionConfig(Strict):
    """How long personal data is kept, in days, counted from each row's own time; older
    rows are deleted (staged and raw) at every `passerelle run`. Unset: kept."""

    events: int | None = Field(None, ge=1, description=(
        "Web and app events, by event time (the CNIL's guideline for audience measurement is "
        "25 months: 760 days)"))
    campaign_sends: int | None = Field(None, ge=1, description="Messages sent, by send time")
    orders: int | None = Field(None, ge=1, description=(
        "Orders, by order time; their order lines go with them (French accounting law keeps "
        "invoices 10 years: 3653 days)"))


class ServerConfig(Strict):
    """``server:`` in passerelle.yml: the host names `passerelle serve` answers to, the
    collector's rate limit per write key, the reverse proxies it trusts."""

    allowed_hosts: list[str] = Field(default_factory=list, description=(
        "Host names accepted in the Host header besides 127.0.0.1, localhost, ::1 and the "
        "bind address, e.g. the name your reverse proxy forwards (cdp.example.fr); "
        "'*.example.fr' matches its subdomains"))
    collector_rate: float = Field(1000, ge=0, le=1_000_000, description=(
        "Requests a second each collector write key (or collect:write token) may send, on "
        "average; beyond, 429 with Retry-After. 0: no limit"))
    collector_burst: int = Field(5000, ge=1, le=10_000_000, description=(
        "Requests a write key may send at once above its rate (the bucket's size)"))
    trusted_proxies: list[str] = Field(default_factory=list, description=(
        "Addresses of the reverse proxies whose X-Forwarded-Proto and X-Forwarded-For are "
        "believed (e.g. 127.0.0.1): then cookies are Secure when the proxy speaks https. "
        "Empty: forwarded headers are ignored"))
    repository_url: str | None = Field(None, pattern=r"^https?://[^\s]+$", description=(
        "Web address of the project's files in your git host, e.g. "
        "https://git.example.fr/crm/cdp/-/blob/main: the web app links each file it shows "
        "but cannot edit (a segment nested deeper than its builder) to this address + its "
        "path"))

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for host in v:
            if not host or "*" in host[1:] or (host.startswith("*") and
                                               not host.startswith("*.")) or host == "*":
                raise ValueError(f"'{host}' is not a host name: write cdp.example.fr or "
                                 "*.example.fr ('*' alone would accept any Host header)")
        return v


class PersonalisationConfig(Strict):
    """``personalisation:`` in passerelle.yml: where decisions read their serving store."""

    redis_url: SecretStr | None = Field(None, description=(
        "Redis holding the decision store and caps, e.g. redis://127.0.0.1:6379/0 (a "
        "password as ${ENV_VAR}); absent: the warehouse's tables"))
    redis_prefix: str = Field("passerelle:decide:", min_length=1,
                              description="Key prefix (one per project sharing a Redis)")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @property
    def redis(self) -> str | None:
        return self.redis_url.get_secret_value() if self.redis_url is not None else None


# ---------------------------------------------------- governance (roles:, app_database:)
def _check_permission(value: str) -> str:
    from passerelle.project.permissions import PERMISSIONS, unknown_permission_message

    if value not in PERMISSIONS:
        raise ValueError(unknown_permission_message(value))
    return value


def _check_role_name(value: str) -> str:
    from passerelle.project.permissions import BUILTIN_ROLES

    if value in BUILTIN_ROLES:
        raise ValueError(f"'{value}' is a built-in role: give yours another name")
    return _check_name(value)


class ProjectConfig(Strict):
    """``passerelle.yml``: the project's engine and defaults."""

    name: str = Field(description="Project name")
    engine: EngineConfig = Field(default_factory=DuckDBEngineConfig)
    server: ServerConfig = Field(default_factory=ServerConfig,
                                 description="Host names the HTTP server answers to")
    timezone: str = Field("Europe/Paris", description="Time zone of naive timestamps in sources")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$", description="Reporting currency")
    default_region: str = Field(
        "FR", pattern=r"^[A-Z]{2}$", description="Region for phone numbers written without +"
    )
    locale: str | None = Field(None, description=(
        "Language and conventions of numbers, money and dates shown to people, e.g. fr_FR "
        "(default: the main language of default_region, FR -> fr_FR)"))
    retention: RetentionConfig = Field(default_factory=RetentionConfig,
                                       description="Days to keep personal data, per entity")
    personalisation: PersonalisationConfig = Field(
        default_factory=PersonalisationConfig, description="The decisions' serving store")
    allowed_paths: list[str] = Field(
        default_factory=list,
        description="Folders outside the project that project files may name (source files, "
                    "exports, the warehouse, the Splink model), e.g. [/data/exports]; every "
                    "other path must stay inside the project folder, symbolic links included")
    # governance: where users, tokens, sessions and the audit log live; the project's roles
    app_database: SecretStr | None = Field(None, description=(
        "Application database URL: postgresql://user:${PASSWORD}@host/db (default: the "
        "SQLite file .passerelle/app.db in the project)"))
    identity_salt: SecretStr | None = Field(None, description=(
        "Secret mixed into the SHA-256 of values a source mapping hashes (`hash: true`, e.g. "
        "national_id); use ${ENV_VAR}, never a literal. Changing it changes every hash"))
    roles: dict[Annotated[str, AfterValidator(_check_role_name)],
                list[Annotated[str, AfterValidator(_check_permission)]]] = Field(
        default_factory=dict,
        description="Custom roles: name -> permissions (docs/governance.md lists them)")
    sso: SsoConfig | None = Field(None, description=(
        "Single sign-on through an OpenID Connect provider (docs/governance.md)"))

    @model_validator(mode="after")
    def _sso_roles(self) -> ProjectConfig:
        from passerelle.project.permissions import BUILTIN_ROLES

        unknown = sorted(self.sso.roles_named() - set(BUILTIN_ROLES) - set(self.roles)
                         ) if self.sso else []
        if unknown:
            raise ValueError(f"sso names unknown role(s) {unknown}: use a built-in role "
                             f"({', '.join(BUILTIN_ROLES)}) or one declared under roles:")
        return self

    @field_validator("app_database")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith(
                ("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with postgresql:// or sqlite:///")
        return v

    @field_validator("locale")
    @classmethod
    def _locale(cls, v: str | None) -> str | None:
        from babel import Locale, UnknownLocaleError

        if v is None:
            return v
        try:
            return str(Locale.parse(v.replace("-", "_")))
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError(f"unknown locale {v!r} (e.g. fr_FR, en_GB)") from exc

    @property
    def display_locale(self) -> str:
        """The locale people read figures in: ``locale``, else the region's main language."""
        from babel import Locale, UnknownLocaleError

        try:
            return self.locale or str(Locale.parse(f"und_{self.default_region}"))
        except (UnknownLocaleError, ValueError):
            return "en_GB"

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (e.g. Europe/Paris)") from exc
        return v


# -------------------------------------------------------------------------- connectors
class _FileConnector(Strict):
    path: ProjectPath = Field(description="File or glob pattern, relative to the project folder")
    on_change: Literal["replace", "error"] = Field(
        "replace",
        description="A file already loaded whose content changed: replace its rows, or stop",
    )


class CsvConnector(_FileConnector):
    """Delimited text. Delimiter, encoding and decimal mark are detected unless given."""

    type: Literal["csv"]
    delimiter: str = Field("auto", description="'auto', ',', ';', '\\t' or '|'")
    encoding: str = Field("auto", description="'auto', 'utf-8', 'cp1252', 'latin-1'...")
    decimal: Literal["auto", ".", ","] = Field("auto", description="Decimal mark of numbers")
    header: bool = True
    quote: str = '"'

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str) -> str:
        v = "\t" if v == "\\t" else v
        if v != "auto" and len(v) != 1:
            raise ValueError("must be 'auto' or a single character")
        return v


class ParquetConnector(_FileConnector):
    type: Literal["parquet"]


class JsonlConnector(_FileConnector):
    """JSON lines: one JSON object a line (Segment-Spec event exports, logs)."""

    type: Literal["jsonl"]


class _DatabaseConnector(Strict):
    host: str = "127.0.0.1"
    user: str
    password: SecretStr | None = Field(None, description="Use ${ENV_VAR}, never a literal")
    database: str
    table: str = Field(description="Table to read (schema.table allowed)")

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$", v):
            raise ValueError("must be a table name, optionally schema-qualified")
        return v


class PostgresConnector(_DatabaseConnector):
    type: Literal["postgres"]
    port: int = 5432
    user: str = "postgres"


class MySQLConnector(_DatabaseConnector):
    """MySQL or MariaDB (PrestaShop, WooCommerce, Magento databases...)."""

    type: Literal["mysql"]
    port: int = 3306
    user: str = "root"


class FileSpool(Strict):
    """Write-ahead files on this machine (one collector process per folder)."""

    type: Literal["file"] = "file"
    path: ProjectPath = Field("spool", description="Folder, relative to the project")


class NatsSpool(Strict):
    """A NATS JetStream stream: several collectors behind a load balancer share it."""

    type: Literal["nats"]
    url: str = "nats://127.0.0.1:4222"
    stream: str = Field("PASSERELLE_EVENTS", pattern=r"^[A-Za-z0-9_-]+$")


class RedisSpool(Strict):
    """A Redis stream (durable only as far as the Redis server's appendfsync setting)."""

    type: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    stream: str = Field("passerelle:events", description="Key prefix of the streams")


SpoolConfig = Annotated[FileSpool | NatsSpool | RedisSpool, Field(discriminator="type")]


class CollectorConnector(Strict):
    """Events sent to `passerelle serve` by Segment-Spec tracking libraries (``/v1/...``)."""

    type: Literal["collector"]
    write_keys: list[SecretStr] = Field(
        min_length=1, description="Keys the tracking libraries send (use ${ENV_VAR})"
    )
    spool: SpoolConfig = Field(default_factory=FileSpool)
    tracking_plan: ProjectPath | None = Field(
        None, description="YAML file of event names -> JSON Schema of their properties"
    )
    max_backlog: int = Field(
        2_000_000, ge=1000, description="Events spooled but not loaded before answering 503"
    )
    future_tolerance_seconds: int = Field(
        300, ge=0, description="Corrected timestamps further in the future are clamped"
    )
    allowed_origins: list[str] | None = Field(
        None,
        description="Web origins (https://shop.example.fr) whose pages may send events with "
        "these write keys; unset: any origin (write keys are public in a page anyway)",
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        # browsers send an origin lowercased, without a path or a trailing slash
        origins = [o.strip().rstrip("/").lower() for o in v]
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], "
                                 "e.g. https://shop.example.fr, without a path")
        return origins


class EventSpec(Strict):
    """One planned event: who owns it and the JSON Schema its properties must follow."""

    description: str = ""
    owner: str | None = None
    properties: dict = Field(default_factory=dict, description="JSON Schema of `properties`")


class TrackingPlan(Strict):
    """``tracking-plan.yml``: the contract between the people who tag and those who read."""

    events: dict[str, EventSpec] = Field(default_factory=dict)
    unplanned: Literal["allow", "flag"] = Field(
        "flag", description="Track calls whose event is not in the plan: accept, or flag"
    )


ConnectorConfig = Annotated[
    CsvConnector | ParquetConnector | JsonlConnector | PostgresConnector | MySQLConnector
    | CollectorConnector,
    Field(discriminator="type"),
]
FILE_CONNECTORS = (CsvConnector, ParquetConnector, JsonlConnector)


class ColumnMapping(Strict):
    """Where a standard field comes from: a source column, or a constant."""

    column: str | None = Field(None, description="Source column")
    value: str | int | float | bool | None = Field(None, description="Constant for every row")
    format: str | list[str] | None = Field(
        None, description="strptime format(s) for dates and timestamps, e.g. '%d/%m/%Y'"
    )
    hash: bool = Field(
        False, description="Keep only the SHA-256 of the normalised value salted with the "
                           "project's `identity_salt` (passerelle.yml): equal values still "
                           "match, the value itself never reaches the warehouse's staged tables"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> ColumnMapping:
        if (self.column is None) == (self.value is None):
            raise ValueError("give exactly one of 'column' or 'value'")
        return self

    @property
    def formats(self) -> list[str]:
        if self.format is None:
            return []
        return [self.format] if isinstance(self.format, str) else list(self.format)


class Incremental(Strict):
    """How re-runs find what is new.

    Files are always tracked by fingerprint (a file already loaded is skipped). Database
    tables with a ``key`` load only rows whose key is above the last value seen; without a
    key each run takes a fresh snapshot that replaces the previous one.
    """

    key: str | None = Field(None, description="Source column that only grows (updated_at, id)")
    staging: Literal["rebuild", "append"] = Field(
        "rebuild",
        description="rebuild: each staging re-reads every raw row; append: loads only add "
                    "rows (new files, rows past the key, collected events), so staging keeps "
                    "stg_<source> and stages only the loads not staged yet (a changed "
                    "mapping, a replaced file or a new raw column still rebuild it)")


class SourceConfig(Strict):
    """``sources/<name>.yml``: one source, mapped to one entity of the standard model."""

    name: str = Field(description="Source name (defaults to the file name)")
    entity: Literal[tuple(ENTITIES)] = Field(description="Standard-model entity")  # type: ignore[valid-type]
    description: str = ""
    owner: str | None = Field(None, description="Team or person answerable for this source")
    connector: ConnectorConfig
    columns: dict[str, str | ColumnMapping] = Field(
        description="Standard field -> source column (or {column, format} / {value})"
    )
    incremental: Incremental = Field(default_factory=Incremental)
    customer_source: str | None = Field(
        None,
        description="For orders and sends: the customer source whose customer_id they carry",
    )
    default_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    extra_fields: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")],
                       str | ColumnMapping] = Field(
        default_factory=dict, max_length=20,
        description="Customer sources: name -> source column of a value that is not a standard "
                    "field but that identity.yml may compare (staged as text, column "
                    "extra_<name> of customer_records)")

    _check = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))

    @model_validator(mode="after")
    def _extra_on_customers(self) -> SourceConfig:
        if self.extra_fields and self.entity != "customers":
            raise ValueError("extra_fields are for customer sources (entity: customers)")
        return self

    @model_validator(mode="after")
    def _append_needs_new_loads(self) -> SourceConfig:
        if (self.incremental.staging == "append" and not self.is_file
                and self.connector.type != "collector" and self.incremental.key is None):
            raise ValueError("incremental.staging 'append' needs incremental.key for a "
                             "database table: without a key each run reads a snapshot that "
                             "replaces the previous one, so there is nothing to append")
        return self

    def mappings(self) -> dict[str, ColumnMapping]:
        """Standard field (or ``extra_<name>``) -> where its value comes from."""
        out = {
            target: ColumnMapping(column=m) if isinstance(m, str) else m
            for target, m in self.columns.items()
        }
        for name, m in self.extra_fields.items():
            out[EXTRA_PREFIX + name] = ColumnMapping(column=m) if isinstance(m, str) else m
        return out

    @property
    def is_file(self) -> bool:
        return isinstance(self.connector, FILE_CONNECTORS)


# ------------------------------------------------------------------------------ checks
Severity = Literal["error", "warn"]


class _Check(Strict):
    name: str | None = Field(None, description="Defaults to <type>_<source>_<column>")
    source: str = Field(description="Source whose staged table is checked")
    severity: Severity = "error"
    owner: str | None = None
    description: str = ""
    tolerance: int = Field(0, ge=0, description="Failing rows allowed before the check fails")


class NotNullCheck(_Check):
    type: Literal["not_null"]
    column: str


class UniqueCheck(_Check):
    type: Literal["unique"]
    column: str | list[str]


class AcceptedValuesCheck(_Check):
    type: Literal["accepted_values"]
    column: str
    values: list[str | int | float | bool]


class RelationshipsCheck(_Check):
    """Every value of ``column`` exists in ``to``'s ``field`` (orders -> customers)."""

    type: Literal["relationships"]
    column: str
    to: str = Field(description="Source referenced")
    field: str = Field(description="Column of the referenced source")


class RowCountCheck(_Check):
    """Row count within bounds, and not changed by more than ``max_change`` since last run."""

    type: Literal["row_count"]
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    max_change: float | None = Field(None, gt=0, description="e.g. 0.5 = ±50% since last run")


class FreshnessCheck(_Check):
    """The newest value of ``column`` is no older than ``max_age_hours``."""

    type: Literal["freshness"]
    column: str
    max_age_hours: float = Field(gt=0)


CheckConfig = Annotated[
    NotNullCheck | UniqueCheck | AcceptedValuesCheck | RelationshipsCheck | RowCountCheck
    | FreshnessCheck,
    Field(discriminator="type"),
]


class ChecksFile(Strict):
    """``checks/<name>.yml``: a list of data-quality checks."""

    checks: list[CheckConfig]


def check_name(check: CheckConfig) -> str:
    """The check's name, or ``<type>_<source>_<column>`` (``row_count_<source>``)."""
    if check.name:
        return check.name
    columns = check_columns(check)
    return "_".join([check.type, check.source, *columns])


def check_columns(check: CheckConfig) -> list[str]:
    column = getattr(check, "column", None)
    if column is None:
        return []
    return [column] if isinstance(column, str) else list(column)
