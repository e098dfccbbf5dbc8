"""Redis killed, then frozen, under load: every request is still answered (rate limits count per process),
nothing is charged differently, the switch is logged once each way and /readyz says "degraded"."""

from __future__ import annotations

import time

import openai

from tests.e2e.conftest import make_shop

from .books import audit
from .conftest import Load, readyz, router_log, sdk_call, statuses

# A generous bound for a slow shared box; a request pays Redis's 100 ms timeout at most once per retry period.
SLOW_S = 3.0


def test_a_killed_then_frozen_redis_costs_no_request_and_the_books_stay_true(launch, emulator_url, private_redis):
    shop = make_shop(emulator_url, rpm=100_000)
    router, _ = launch(REDIS_URL=private_redis.url, REDIS_RETRY_AFTER_S="1", WEB_CONCURRENCY="2")
    model = shop.model.public_id
    with Load(router, shop.key, model, clients=4, emulator={"completion_tokens": 8}) as load:
        time.sleep(2)
        private_redis.kill()
        time.sleep(2)
        killed = readyz(router)
        time.sleep(1)
        private_redis.start()
        time.sleep(2.5)
        back = readyz(router)
        private_redis.freeze()
        time.sleep(3)
        frozen = readyz(router)
        private_redis.thaw()
        time.sleep(2)

    assert statuses(load.seen) == {200: len(load.seen)}, [s.error for s in load.seen if s.status != 200][:5]
    assert len(load.seen) > 40
    assert max(s.seconds for s in load.seen) < SLOW_S
    assert (killed[0], killed[1]["status"], killed[1]["checks"]["redis"], killed[1]["rate_limits"]) == (
        200,
        "degraded",
        "unreachable",
        "per-process",
    )
    assert (back[0], back[1]["status"], back[1]["rate_limits"]) == (200, "ready", "shared")
    assert (frozen[0], frozen[1]["status"], frozen[1]["checks"]["redis"]) == (200, "degraded", "unreachable")
    # Logged once per switch, not once per request.
    log = router_log(router)
    assert log.count("completions.ratelimit [") == 4, log[-3000:]  # down, back, down (frozen), back
    assert " 500 " not in log and "Internal Server Error" not in log

    shop.balance()  # the last plain answers' charges are written
    assert audit(load.delivered()) == []
    print(f"\nredis killed then frozen: {statuses(load.seen)}, slowest {max(s.seconds for s in load.seen):.2f} s")


def test_with_redis_down_a_key_gets_its_share_of_its_limit_in_each_process(launch, emulator_url, private_redis):
    shop = make_shop(emulator_url, rpm=6)
    router, _ = launch(REDIS_URL=private_redis.url, WEB_CONCURRENCY="2")
    private_redis.kill()
    with openai.OpenAI(base_url=router, api_key=shop.key, max_retries=0, timeout=30) as client:
        seen = [sdk_call(client, shop.model.public_id, stream=False) for _ in range(5)]
    # 6 requests a minute shared by 2 processes: this one allows 3.
    assert [s.status for s in seen] == [200, 200, 200, 429, 429]
    assert seen[3].retry_after is not None and 1 <= int(seen[3].retry_after) <= 60
    shop.balance()
    assert audit({s.generation_id: s.cost for s in seen if s.cost is not None}) == []
