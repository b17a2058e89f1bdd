"""schemathesis against the published OpenAPI schema of the server, on a tiny project, with a
valid admin token: no request that fits the schema gets a 500, and every answer matches its
declared schema.

Kept fast (one app, the queued jobs not run, cheap password hashes, 8 examples an
operation, the examples and fuzzing phases only, no shrinking): the routes' own edge cases
are in test_api_edges.py. Signing out (DELETE /api/session) would revoke the very token the
run uses: left out."""

from __future__ import annotations

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from api_helpers import admin_token, tiny_project
from passerelle.api import create_server
from passerelle.governance import passwords

HOST = {"host": "localhost"}  # the app answers to the loopback names only
MAX_EXAMPLES = 8
SENT: dict[str, str] = {}  # the headers of every call: the host and the admin token


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    project = tiny_project(tmp_path_factory.mktemp("schemathesis") / "project")
    saved = passwords._hasher  # POST /api/users and /api/session hash and verify passwords
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    app = create_server(project, loader=False, worker=False)
    SENT.update(HOST, Authorization=f"Bearer {admin_token(project)}")
    # examples and fuzzing; the coverage phase (hundreds of boundary cases an operation)
    # and stateful chains are left to a release-time run of the schemathesis CLI
    config = SchemathesisConfig.from_dict({
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"max-examples": MAX_EXAMPLES}})
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=SENT, config=config)
    passwords._hasher = saved
    app.state.web_project.close()
    app.state.app_db.close()
    project.close()


schema = schemathesis.pytest.from_fixture("api_schema").exclude(
    method="DELETE", path="/api/session")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_schema(case):
    response = case.call_and_validate(headers=SENT, checks=[
        not_a_server_error, response_schema_conformance])
    if case.path.startswith("/api") and case.path != "/api/session":
        assert response.status_code != 401, response.text  # the token is accepted
