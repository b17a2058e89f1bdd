"""schemathesis against the published OpenAPI schema of the server, on a tiny project: no
request that fits the schema gets a 500, and every answer matches its declared schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api_helpers import tiny_project
from passerelle.api import create_server

HOST = {"host": "localhost"}  # the app answers to the loopback names only


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    project = tiny_project(tmp_path_factory.mktemp("schemathesis") / "project")
    app = create_server(project, loader=False)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, headers=HOST)
    project.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_schema(case):
    case.call_and_validate(headers=HOST,
                           checks=[not_a_server_error, response_schema_conformance])
