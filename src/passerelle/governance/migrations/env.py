"""Alembic environment, run by :func:`passerelle.governance.db.upgrade` on the connection it
opened (no alembic.ini). New revisions are written by hand in versions/ (copy the newest);
tests/test_governance_db.py checks that the models and the migrations agree."""

from __future__ import annotations

from alembic import context

from passerelle.governance.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
