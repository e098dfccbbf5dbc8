"""A stream holds no database connection while it relays: many open streams, few connections."""

from __future__ import annotations

import threading

import requests
from django.db import connection

from .conftest import Shop


def _router_connections(routers: list[str]) -> int:
    """Connections held by these router processes (each names itself after its port)."""
    names = [f"mlrouter-router-{url.rsplit(':', 1)[1].split('/')[0]}" for url in routers]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = ANY(%s)", [names])
        return cursor.fetchone()[0]


def test_thirty_open_streams_use_no_more_connections_than_the_pools(routers: list[str], shop: Shop):
    # Each router process has a pool of at most 4 connections (DB_POOL_MAX_SIZE in the harness).
    body = {
        "model": shop.model.public_id,
        "stream": True,
        "messages": [{"role": "user", "content": "Hello"}],
        "emulator": {"completion_tokens": 4, "pause_after": 1, "pause_ms": 2500},
    }
    opened = threading.Barrier(31)
    outcomes: list[bool] = []

    def stream(i: int) -> None:
        url = f"{routers[i % 2]}/chat/completions"
        headers = {"Authorization": f"Bearer {shop.key}"}
        with requests.post(url, json=body, headers=headers, stream=True, timeout=30) as response:
            lines = response.iter_lines()
            next(line for line in lines if line.startswith(b"data: {"))
            opened.wait(timeout=20)
            outcomes.append(any(line == b"data: [DONE]" for line in lines))

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(30)]
    for thread in threads:
        thread.start()
    opened.wait(timeout=20)
    # Every stream is open and relaying (the upstream is paused mid-answer) right now.
    during = _router_connections(routers)
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == [True] * 30
    assert during <= 8, f"{during} database connections for 30 open streams"
