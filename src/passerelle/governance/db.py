"""Opening the application database and bringing its schema up to date.

A SQLite file inside the project (``.passerelle/app.db``) unless ``passerelle.yml`` gives
``app_database: postgresql://...``. Its schema is the Alembic migrations shipped in
``migrations/``; :func:`open_app_db` runs them, so a server or a command started after an
upgrade of Passerelle finds the tables it expects. It is separate from the warehouse: a
long pipeline run never locks it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from passerelle.errors import EngineError
from passerelle.governance.permissions import Roles

DEFAULT_SQLITE = Path(".passerelle") / "app.db"
# Serialises two processes that migrate the same PostgreSQL database at once.
_MIGRATION_LOCK = 4_716_173_351


def database_url(project: Any) -> str:
    """The URL for a project (anything with ``root`` and ``config``: a ProjectDefinition or
    a core.Project). The SQLite default's folder is created readable by its owner only:
    it holds password hashes."""
    configured = project.config.app_database
    if configured is not None:
        return configured.get_secret_value()
    path = Path(project.root) / DEFAULT_SQLITE
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        os.chmod(path.parent, 0o700)
    return f"sqlite:///{path}"


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")  # psycopg 3
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")  # the server and a command may write at once
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
    cursor.close()


def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "passerelle.governance:migrations")
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run the migrations up to the newest; returns (revision before, revision after)."""
    from alembic import command

    try:
        before = current_revision(engine)
    except OperationalError as exc:
        raise _unreachable(engine, exc) from exc
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        raise _unreachable(engine, exc) from exc
    return before, head_revision()


def _unreachable(engine: Engine, exc: Exception) -> EngineError:
    where = engine.url.render_as_string(hide_password=True)
    return EngineError(f"The application database {where} refused: {str(exc).splitlines()[0]}",
                       "Check `app_database` in passerelle.yml and that the server answers.")


class AppDB:
    """The application database of one project: its engine, its roles and transactions."""

    def __init__(self, engine: Engine, roles: Roles) -> None:
        self.engine = engine
        self.roles = roles
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on an error."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AppDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(url: str, roles: Roles | None = None, migrate: bool = True) -> AppDB:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return AppDB(engine, roles or Roles())


def open_app_db(project: Any, migrate: bool = True) -> AppDB:
    """The project's application database, its schema brought up to date first."""
    return connect(database_url(project), Roles(project.config.roles), migrate)
