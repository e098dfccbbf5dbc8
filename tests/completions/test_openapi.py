"""The OpenAPI description says who may call what, which statuses come back, and what a body must hold.

tests/e2e/test_openapi_fuzz.py checks the description against the live API; these check what it declares.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PUBLIC = ["/v1/models", "/v1/models/{model_id}", "/v1/prices"]
KEYED = ["/v1/generation", "/v1/key", "/v1/credits"]
SURFACES = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/messages/count_tokens"]


@pytest.fixture(scope="module")
def description(django_db_blocker) -> dict[str, Any]:
    with django_db_blocker.unblock():
        return Client().get("/v1/openapi.json").json()


def operations(description: dict[str, Any], paths: list[str]) -> list[dict[str, Any]]:
    return [op for path in paths for op in description["paths"][path].values()]


def test_public_reads_are_declared_public_and_every_other_operation_keyed(description):
    assert all("security" not in op for op in operations(description, PUBLIC))
    assert all(op["security"] == [{"ApiKey": []}] for op in operations(description, KEYED + SURFACES))


def test_a_public_read_ignores_a_key_it_does_not_need():
    for path in ("/v1/models", "/v1/prices"):
        assert Client().get(path, HTTP_AUTHORIZATION="Bearer orb_live_unknown").status_code == 200


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        ("/v1/chat/completions", {400, 401, 402, 403, 404, 408, 413, 415, 422, 429, 502, 503, 504}),
        ("/v1/embeddings", {400, 401, 402, 403, 404, 408, 413, 415, 422, 429, 502, 503, 504}),
        ("/v1/messages", {400, 401, 402, 403, 404, 408, 413, 415, 422, 429, 529}),
        ("/v1/messages/count_tokens", {400, 401, 403, 408, 413, 415}),
        ("/v1/models", {400}),
        ("/v1/models/{model_id}", {400, 404}),
        ("/v1/generation", {400, 401, 403, 404}),
        ("/v1/key", {400, 401, 403}),
        ("/v1/credits", {400, 401, 403}),
    ],
)
def test_every_error_status_is_documented_with_its_error_body(description, path: str, statuses: set[int]):
    (op,) = description["paths"][path].values()
    documented = {int(status) for status in op["responses"]} - {200}
    assert documented == statuses
    for status in statuses:
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        assert schema.get("$ref") or "error" in schema["properties"]


@pytest.mark.parametrize(
    ("path", "valid"),
    [
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/chat/completions", {"models": ["m"], "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/messages", {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/messages/count_tokens", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        ("/v1/embeddings", {"model": "m", "input": "hi"}),
        ("/v1/embeddings", {"model": "m", "input": [[1, 2], [3]]}),
    ],
)
def test_the_request_schemas_require_what_the_api_requires(description, path: str, valid: dict[str, Any]):
    schema = description["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.validate(valid, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({}, schema)
    for name in valid:
        if name != "models":
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({k: v for k, v in valid.items() if k != name}, schema)
