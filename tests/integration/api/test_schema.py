"""schemathesis against the app's own OpenAPI document, on the real node (bounded: 30 examples per operation).

Every response must conform to the documented schema (status code, content type, body), and no 5xx may come
back: the node is up and the index and users index exist, so even the documented 502/503 would be a bug here.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tbhns_opensearch.api import ServeSettings, create_app
from tests.helpers import toys_search_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(os_client, opensearch_config, encoder):  # type: ignore[no-untyped-def]
    yield from toys_search_env(os_client, opensearch_config, encoder)


@pytest.fixture(scope="module")
def api_schema(env, opensearch_config):  # type: ignore[no-untyped-def]
    settings_ = ServeSettings(opensearch_config, alias=env.alias, users_index=env.users_index, warm=False)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_, search_client=env.search))


def test_every_operation_conforms_to_the_openapi_document(api_schema) -> None:  # type: ignore[no-untyped-def]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} >= {
        ("GET", "/search"),
        ("POST", "/search"),
        ("GET", "/compare"),
    }
    for operation in operations:  # hypothesis drives each operation (schemathesis' pytest plugin is not used)

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case) -> None:  # type: ignore[no-untyped-def]
            # the schema documents filter names, not value rules (price=MIN..MAX): a 422 for price=abc is right
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        conforms()
