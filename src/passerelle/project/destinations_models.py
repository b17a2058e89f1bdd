"""Destinations: where an audience goes (``destinations/*.yml``, or inline in an audience file).

One YAML file a destination, named after the file (``destinations/brevo_newsletter.yml`` is
the destination ``brevo_newsletter``). Kinds are told apart by ``type``; unknown keys are
errors; secrets and passwords come from the environment (``${VAR}``) and are kept as
``SecretStr`` so they never show in logs, reprs or the export log.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, TypeAdapter, field_validator, model_validator

from passerelle.errors import ExitCode, PasserelleError, Problems
from passerelle.project.models import Strict
from passerelle.project.paths import ProjectPath, check_paths

_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,62}$")
_COLUMN_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class DestinationError(PasserelleError, ValueError):
    """A destination is missing, badly defined, or does not fit the data sent to it."""


class DeliveryError(PasserelleError):
    """A destination outside our control (database, server) refused or is unreachable."""

    exit_code = ExitCode.EXTERNAL_ERROR


def _check_attributes(value: dict[str, str], names: re.Pattern[str], what: str) -> dict[str, str]:
    for name, source in value.items():
        if not names.match(name):
            raise ValueError(f"attribute name '{name}' is not a valid {what}")
        if not source or not re.match(r"^(trait:)?[a-z_][a-z0-9_]*$", source):
            raise ValueError(f"attribute '{name}': '{source}' must be a profiles column "
                             "(e.g. city) or trait:<name> (e.g. trait:clv_12m)")
    return value


class _Exit(Strict):
    purpose: str | None = Field(
        None, description="Purpose of consent.yml the people sent must have granted "
                          "(default: the audience's); the others are left out and counted")


class CsvDestination(_Exit):
    """A CSV file in the layout an e-mailing tool imports (treated members only)."""

    type: Literal["csv"]
    format: Literal["brevo", "mailchimp", "generic"] = Field(
        "generic", description="brevo: EMAIL;PRENOM;NOM;SMS (';', UTF-8); mailchimp: Email "
                               "Address,First Name,Last Name,Phone Number,Tags; generic: "
                               "person_id,email,phone,first_name,last_name")
    path: ProjectPath = Field(description="File to write, relative to the project; {audience} and "
                                  "{date} are replaced (e.g. exports/{audience}-{date}.csv)")
    language: Literal["fr", "en"] = Field(
        "fr", description="brevo only: the name attributes of the Brevo account, which follow "
                          "its language (fr: PRENOM, NOM; en: FIRSTNAME, LASTNAME)")
    delimiter: Literal[",", ";", "\t"] | None = Field(
        None, description="Override the separator (default: ';' for brevo, ',' otherwise)")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Extra columns: column header -> profiles column "
                                          "or trait:<name>")
    tags: list[str] = Field(default_factory=list,
                            description="mailchimp only: tags given to every contact "
                                        "(default: the audience name)")

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_attributes(v, _ATTRIBUTE_NAME, "column header")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            if not tag.strip() or len(tag) > 100:
                raise ValueError(f"tag '{tag}' must be 1 to 100 characters (Mailchimp's limit)")
        return v

    @model_validator(mode="after")
    def _format_options(self) -> CsvDestination:
        if self.tags and self.format != "mailchimp":
            raise ValueError("tags only apply to format: mailchimp")
        return self


class AdListDestination(_Exit):
    """A customer list for an ad platform (treated members only): e-mails and phones
    normalised, then hashed with SHA-256, in the column layout the platform documents."""

    type: Literal["google_customer_match", "meta_custom_audience"] = Field(
        description="google_customer_match: Email,Phone (Google Ads customer list upload); "
                    "meta_custom_audience: email,phone (Meta custom audience customer list)")
    path: ProjectPath = Field(description="File to write, relative to the project; {audience} "
                                          "and {date} are replaced")
    purpose: str | None = Field(
        "ad_audiences", description="Purpose of consent.yml the people sent must have "
                                    "granted (default: ad_audiences, the purpose of ad "
                                    "audiences)")


class WebhookDestination(_Exit):
    """POST the changes of an audience as signed JSON batches."""

    type: Literal["webhook"]
    url: str = Field(description="http(s) URL receiving the batches")
    secret: SecretStr = Field(description="HMAC-SHA256 key; use ${ENV_VAR}, never a literal")
    batch_size: int = Field(500, ge=1, le=10_000, description="Members per request")
    timeout_seconds: float = Field(10.0, gt=0, description="Per request (connect and read)")
    max_attempts: int = Field(5, ge=1, le=20, description="Tries per batch before dead letter")
    backoff_seconds: float = Field(0.5, ge=0, description="First retry delay (doubles each try)")
    max_backoff_seconds: float = Field(30.0, ge=0, description="Cap of one retry delay")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Extra fields of each member: key -> profiles "
                                          "column or trait:<name>")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use a random token)")
        return v

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_attributes(v, _COLUMN_NAME, "JSON key (a-z, 0-9, _)")


class _Connection(Strict):
    host: str = "127.0.0.1"
    password: SecretStr | None = Field(None, description="Use ${ENV_VAR}, never a literal")
    database: str


class PostgresConnection(_Connection):
    port: int = 5432
    user: str = "postgres"
    schema_: str = Field("public", alias="schema", description="Schema of the table")


class MySQLConnection(_Connection):
    port: int = 3306
    user: str = "root"


class _DatabaseDestination(_Exit):
    table: str = Field(description="Table to write (created when missing)")
    mode: Literal["replace", "upsert"] = Field(
        "replace", description="replace: the table holds exactly the audience afterwards; "
                               "upsert: insert or update members by person_id, keep the rest")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Extra columns: column -> profiles column or "
                                          "trait:<name>")
    chunk_size: int = Field(5_000, ge=1, description="Rows per bulk insert")

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        if not _TABLE_NAME.match(v):
            raise ValueError("must be a table name (letters, digits, _ and $)")
        return v

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_attributes(v, _COLUMN_NAME, "column name (a-z, 0-9, _)")


class PostgresDestination(_DatabaseDestination):
    """Reverse ETL into a PostgreSQL table."""

    type: Literal["postgres"]
    connection: PostgresConnection


class MySQLDestination(_DatabaseDestination):
    """Reverse ETL into a MariaDB or MySQL table."""

    type: Literal["mysql"]
    connection: MySQLConnection


Destination = Annotated[
    CsvDestination | AdListDestination | WebhookDestination | PostgresDestination
    | MySQLDestination,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Destination)


class DestinationFile(Strict):
    """Schema of one ``destinations/*.yml`` file (the JSON Schema comes from here)."""

    destination: Destination


def parse_destination(data: dict[str, Any]) -> Any:
    """Validate one destination mapping (already read from YAML, ``${VAR}`` resolved).

    Raises :class:`DestinationError` listing every problem.
    """
    from pydantic import ValidationError

    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise DestinationError("The destination is invalid:\n" + "\n".join(
            f"  - {line}" for line in lines),
            "Fix it (see docs/activation.md for every key).") from exc


def load_destinations(root: Path | str) -> dict[str, Any]:
    """Every ``destinations/*.yml`` of a project, by name (the file name without extension).

    Raises :class:`~passerelle.errors.ProjectError` with every problem, each with its file and
    line, like the other project files.
    """
    from passerelle.project.load import parse_document, read_documents

    root = Path(root)
    problems = Problems()
    found: dict[str, Any] = {}
    for doc in read_documents(root, "destinations/*", problems):
        name = Path(doc.file).stem
        if not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
            problems.add(doc.file, f"'{name}' is not a valid destination name",
                         hint="name files in lower case: a-z, 0-9 and _")
            continue
        mine = Problems()
        wrapped = _wrap(doc)
        parsed = parse_document(DestinationFile, wrapped, mine)
        if parsed is not None:
            check_paths(mine, wrapped, parsed, root)
            found[name] = parsed.destination
        for p in mine.items:  # the wrapper key is ours, not the user's: drop it
            message = re.sub(r"^destination(\.|: )", "", p.message).replace("'destination.", "'")
            problems.add(p.file, message, p.line, p.hint, p.severity)
    problems.raise_if_any()
    return found


def _wrap(doc: Any) -> Any:
    """A ``destinations/*.yml`` holds the destination's keys at the top level; validate it as
    ``{destination: ...}`` while keeping the line numbers of the original keys."""
    from passerelle.project.yamlio import YamlDoc

    lines = {("destination", *path): line for path, line in doc.lines.items()}
    if () in doc.lines:
        lines[()] = doc.lines[()]
    return YamlDoc(doc.file, {"destination": doc.data}, lines)
