"""The gevent worker's `sendall` for plain sockets (core/green.py `sendall_fast_install`)."""

from __future__ import annotations

import gevent
import pytest
from gevent._socket3 import socket as green_socket
from gevent.socket import socketpair

import core.green


@pytest.fixture
def fast(monkeypatch):
    """The fast `sendall` installed on gevent's socket class for one test, then gevent's own again."""
    monkeypatch.setattr(core.green, "COOPERATIVE", True)
    monkeypatch.setattr(green_socket, "sendall", green_socket.sendall)
    core.green.sendall_fast_install()
    assert getattr(green_socket.sendall, "fast", False)


def _counting_getsockopt(monkeypatch) -> list:
    calls = []
    real = green_socket.getsockopt

    def getsockopt(self, *args):
        calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(green_socket, "getsockopt", getsockopt)
    return calls


def test_a_write_the_buffer_takes_is_one_send_without_asking_the_buffer_size(fast, monkeypatch):
    calls = _counting_getsockopt(monkeypatch)
    a, b = socketpair()
    with a, b:
        assert a.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello") is None
        assert b.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nhello"
    assert calls == []  # gevent's own sendall asks for SO_SNDBUF on every call


def test_without_it_gevent_asks_the_buffer_size_on_every_write(monkeypatch):
    calls = _counting_getsockopt(monkeypatch)
    a, b = socketpair()
    with a, b:
        a.sendall(b"hello")
        assert b.recv(100) == b"hello"
    assert len(calls) == 1


def test_what_the_buffer_cannot_take_is_waited_for_and_all_arrives(fast):
    a, b = socketpair()
    payload = bytes(range(256)) * 40_000  # ~10 MB: far more than one send takes
    received = bytearray()

    def read() -> None:
        while len(received) < len(payload):
            gevent.sleep(0.001)  # a slow reader: the writer must wait for the buffer to drain
            received.extend(b.recv(1 << 20))

    with a, b:
        reader = gevent.spawn(read)
        a.sendall(payload)
        reader.join(timeout=30)
    assert bytes(received) == payload


def test_other_payloads_and_errors_behave_as_gevents_own(fast):
    a, b = socketpair()
    with b:
        a.sendall(memoryview(b"view"))
        a.sendall(bytearray(b"array"))
        a.sendall(b"")
        assert b.recv(100) == b"viewarray"
        a.close()
        with pytest.raises(OSError):
            a.sendall(b"after close")
    c, d = socketpair()
    with c:
        d.close()
        with pytest.raises(OSError):  # the peer gone: EPIPE or ECONNRESET, as from gevent's sendall
            for _ in range(100):
                c.sendall(b"x" * 65536)


def test_installing_twice_wraps_once(fast):
    installed = green_socket.sendall
    core.green.sendall_fast_install()
    assert green_socket.sendall is installed


def test_outside_gevent_nothing_is_installed(monkeypatch):
    monkeypatch.setattr(core.green, "COOPERATIVE", False)
    monkeypatch.setattr(green_socket, "sendall", green_socket.sendall)
    before = green_socket.sendall
    core.green.sendall_fast_install()
    assert green_socket.sendall is before
