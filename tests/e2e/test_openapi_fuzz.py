"""The OpenAPI description against the live API: schemathesis fuzzes every operation under gunicorn.

Each operation gets a bounded number of cases, valid and invalid by the description, sent with a funded
key; a body's `model` is set to one that is sold, so requests get past routing to the emulator and are
held, charged or refused for funds. Every answer must be no 5xx and must match what the description
declares for its status.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from .conftest import Shop, make_shop

# Cases per operation and generation mode: under two minutes for the whole description on a busy machine.
EXAMPLES = {"POST": 30, "GET": 15}

# One well-formed body per money surface, sent before its generated cases: bodies valid by the description
# are often refused for what it does not spell (a user message without content), so thirty of them may
# all be 400s, and the money path must be reached in every run, not in most.
WELL_FORMED = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
    "/v1/messages": {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16},
}


@pytest.mark.django_db(transaction=True)
def test_every_operation_answers_as_described_and_never_with_a_5xx(router: str, emulator_url: str):
    chat = make_shop(emulator_url, rpm=100_000)
    embed = make_shop(emulator_url, rpm=100_000, upstream_model="emulator-embed")
    base = router.removesuffix("/v1")
    schema = schemathesis.openapi.from_url(f"{router}/openapi.json")
    session = requests.Session()
    seen: dict[str, set[int]] = {}

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every /v1 operation, the POST surfaces and the reads
    for operation in operations:
        shop = embed if operation.path == "/v1/embeddings" else chat
        statuses = seen.setdefault(f"{operation.method.upper()} {operation.path}", set())
        if operation.method.upper() == "POST" and operation.path in WELL_FORMED:
            body = {**WELL_FORMED[operation.path], "model": shop.model.public_id}
            case = operation.Case(body=body, media_type="application/json")
            _send(case, shop, base, session, statuses)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, shop, base, session, statuses)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE  # nothing to get wrong: an operation without input

    # The money paths were reached, not only refused at the door.
    assert 200 in seen["POST /v1/chat/completions"], seen
    # Messages: generated content blocks of made-up types are refused (400) on a translated route; the
    # request still went through authentication and routing.
    assert seen["POST /v1/messages"] & {200, 400}, seen
    assert 200 in seen["GET /v1/key"], seen


def _fuzz(operation, mode: GenerationMode, shop: Shop, base: str, session, statuses: set[int]) -> None:
    examples = EXAMPLES.get(operation.method.upper(), 15)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: the failing case is reported as it was sent
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        if isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = shop.model.public_id
            if isinstance(case.body.get("models"), list):  # fallback models must be sold ones too
                case.body["models"] = [shop.model.public_id] * len(case.body["models"])
        _send(case, shop, base, session, statuses)

    run()


def _send(case, shop: Shop, base: str, session, statuses: set[int]) -> None:
    response = case.call(base_url=base, session=session, headers=_headers(shop.key, case.headers), timeout=30)
    statuses.add(response.status_code)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


def _headers(key: str, generated: dict | None) -> dict[str, str]:
    # The funded key, in both headers the surfaces read it from; a generated Content-Type stays (415s).
    return {**(generated or {}), "Authorization": f"Bearer {key}", "x-api-key": key}
