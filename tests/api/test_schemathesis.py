"""Property test of the whole API from its own OpenAPI schema: no input gives a 5xx.

Schemathesis generates requests for every operation (valid and invalid
bodies, paths and queries), runs them against the app over ASGI with a write
token, and checks every answer: no server error, a documented status code,
a declared content type, and a body that matches the documented schema.
The live stream is left out: it never ends by design (tested in test_live).

Not checked: "schema-valid request rejected" (two rules JSON Schema cannot
state: input times must lie in 2000–2200 and a window's end after its start;
both answer 422 naming the field) and FastAPI's own OPTIONS/extra-query
behaviour.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from gridshare.api import create_api
from tests.api.conftest import WRITE, api_config
from tests.api.fake_backend import FakeSite

app = create_api(FakeSite(), api_config(), allowed_hosts=["testserver"])  # its ASGI client's
schema = schemathesis.openapi.from_asgi("/api/openapi.json", app).exclude(path="/api/live")

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_answers_every_generated_request(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=WRITE, checks=CHECKS)
