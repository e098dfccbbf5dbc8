"""The bytes of an upstream call: each route's request head encoded once, and the request sent in one write.

urllib3 builds every request from a headers dict: a set of their lowercased names, `putheader` for each
(two validating regexes and an encode apiece), then one socket write for the head and another for the
body. A route's request line and fixed headers never change between calls, so `RequestHead` has
http.client encode them once, on a connection that is never opened (the same bytes urllib3 would send,
Host included), and `OneWrite.request` sends that head, the Content-Length, the call's own headers and
the body in one write. Anything else (a body that is not bytes, chunked framing, another method or path,
a call's header that sets the framing) takes urllib3's own path with the headers merged as before.

Answers: http.client hands the response's header lines to the email package's parser (~20 µs for a
handful of headers). When every line is a plain ASCII `Name: value` line, `parse_headers` builds the
same HTTPMessage directly; any other line (folded, non-ASCII, a stray CR, no name) takes the standard
parser for the whole block. `Response.begin` is http.client's own code with that one function swapped,
so status line, 100-continue, framing (chunked, Content-Length) and keep-alive are read as before.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from collections.abc import Mapping
from typing import Any

from urllib3.connection import HTTPConnection, _get_default_user_agent, _ResponseOptions

# Set by a call's own headers, these change the request's framing: urllib3 writes such a request itself.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


class RequestHead:
    """One route's request line and fixed header lines, as http.client writes them, and the dict they came from."""

    __slots__ = ("headers", "lines", "method", "name_set", "names", "path")

    def __init__(
        self,
        connection_class: type[HTTPConnection],
        host: str,
        port: int | None,
        method: str,
        path: str,
        headers: Mapping[str, str],
    ) -> None:
        names = {name.lower() for name in headers}
        probe = connection_class(host, port)  # never connected: it only encodes
        probe.putrequest(method, path, skip_host="host" in names, skip_accept_encoding="accept-encoding" in names)
        if "user-agent" not in names:
            probe.putheader("User-Agent", _get_default_user_agent())
        for name, value in headers.items():
            probe.putheader(name, value)
        self.lines: tuple[bytes, ...] = tuple(probe._buffer)  # the request line first
        self.names = tuple(line.split(b":", 1)[0].decode("ascii").lower() for line in self.lines[1:])
        self.name_set = frozenset(self.names)
        self.headers = dict(headers)
        self.method = method
        self.path = path

    def without(self, names: frozenset[str]) -> list[bytes]:
        """The prebuilt lines, less the headers a call sets itself (`names` lowercased)."""
        kept = [self.lines[0]]
        kept += (line for name, line in zip(self.names, self.lines[1:], strict=True) if name not in names)
        return kept


class Prebuilt(dict):
    """What urlopen is given as headers: the call's own (the dict) and its route's prebuilt head.

    urlopen copies its headers before a request; the copy keeps the head.
    """

    __slots__ = ("head",)

    def __init__(self, head: RequestHead, own: Mapping[str, str] = {}) -> None:
        super().__init__(own)
        self.head = head

    def copy(self) -> Prebuilt:
        return Prebuilt(self.head, self)

    def merged(self) -> dict[str, str]:
        """All the headers in one dict, the call's own winning: what urllib3's general path is given."""
        return {**self.head.headers, **self}


# A header line that the email parser would take as one plain field: name, colon, value, line end.
_PLAIN_LINE = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n\x80-\xff]*)\r?\n")


def parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """http.client.parse_headers, without the email parser when every line is a plain ASCII field."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # its limits on line length and count
    fields = []
    for line in lines[:-1] if lines[-1] in (b"\r\n", b"\n", b"") else lines:
        plain = _PLAIN_LINE.fullmatch(line)
        if plain is None:
            return email.parser.Parser(_class=_class).parsestr(b"".join(lines).decode("iso-8859-1"))
        fields.append((plain[1].decode("ascii"), plain[2].decode("ascii")))
    message = _class()
    message._headers = fields  # what the parser's set_raw builds, field by field
    message.set_payload("")  # the parser's: the (empty) text after the header block
    return message


class Response(http.client.HTTPResponse):
    """http.client's response, its header block read by `parse_headers`."""

    begin = types.FunctionType(
        http.client.HTTPResponse.begin.__code__,
        {**vars(http.client), "parse_headers": parse_headers},
        "begin",
    )


class OneWrite:
    """A connection that sends a prebuilt request (see the module's docstring) in one write and reads its
    answer's headers with `parse_headers`."""

    response_class = Response

    sock: Any
    timeout: Any
    _buffer: list[bytes]
    _response_options: Any

    def request(  # type: ignore[no-untyped-def]
        self,
        method,
        url,
        body=None,
        headers=None,
        *,
        chunked=False,
        preload_content=True,
        decode_content=True,
        enforce_content_length=True,
    ):
        head = headers.head if isinstance(headers, Prebuilt) else None
        own = frozenset(name.lower() for name in headers) if head is not None and headers else frozenset()
        if (
            head is None
            or type(body) is not bytes
            or chunked
            or method != head.method
            or url != head.path
            or own & _FRAMING
        ):
            return super().request(  # type: ignore[misc]
                method,
                url,
                body=body,
                headers=headers.merged() if head is not None else headers,
                chunked=chunked,
                preload_content=preload_content,
                decode_content=decode_content,
                enforce_content_length=enforce_content_length,
            )
        # What urllib3's own request does before it writes.
        if self.sock is not None:
            self.sock.settimeout(self.timeout)
        self._response_options = _ResponseOptions(
            request_method=method,
            request_url=url,
            preload_content=preload_content,
            decode_content=decode_content,
            enforce_content_length=enforce_content_length,
        )
        # http.client's bookkeeping (a request begun on this connection); its request line is the prebuilt one.
        self.putrequest(method, url, skip_host=True, skip_accept_encoding=True)  # type: ignore[attr-defined]
        self._buffer[:] = head.without(own) if own & head.name_set else list(head.lines)
        self._buffer.append(b"Content-Length: %d" % len(body))
        for name, value in headers.items():
            self.putheader(name, value)  # type: ignore[attr-defined]
        self.endheaders(body)  # type: ignore[attr-defined]

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        """http.client's, with a bytes body sent in the same write as the head."""
        if type(message_body) is not bytes or encode_chunked:
            return super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
        self._buffer.extend((b"", message_body))
        message = b"\r\n".join(self._buffer)
        del self._buffer[:]
        self.send(message)  # type: ignore[attr-defined]
