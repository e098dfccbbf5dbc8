"""The upstream connection pool (completions/upstreams/openai_chat.py): a dropped connection is noticed."""

from __future__ import annotations

import socket

from completions.upstreams import openai_chat


def test_pooled_connections_check_with_the_kernel_whether_the_provider_closed_them():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        pool = openai_chat._pool.connection_from_url(f"http://127.0.0.1:{port}/v1")
        conn = pool._get_conn()
        assert isinstance(conn, openai_chat._Connection)
        assert not conn.is_connected  # not opened yet
        conn.connect()
        accepted, _ = listener.accept()
        assert conn.is_connected
        accepted.close()
        assert not conn.is_connected
        conn.close()
    finally:
        listener.close()


def test_tls_providers_get_the_same_check():
    pool = openai_chat._pool.connection_from_url("https://provider.invalid/v1")
    assert pool.ConnectionCls is openai_chat._TLSConnection
    assert issubclass(openai_chat._TLSConnection, openai_chat._DropCheck)
