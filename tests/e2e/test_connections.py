"""Connections cannot be hoarded: raw sockets against the real server with small limits.

Slow or silent clients are dropped at their deadline, oversize headers get a 431, a stalled body never
reaches the model, and at the connection cap idle connections give way to a new client; only when
every connection is in a request does a newcomer get a 503 with `Retry-After`.
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from support.harness import KEY_A, scripted

from respgate.config import ServerSettings
from respgate.http.server import connection_cap

MODELS = [
    scripted("chat", {"text": "Hello."}),
    scripted("slow", {"text": " ".join(f"word{i}" for i in range(200))}, delay=0.05),
]
# Generous: every wait below is "the server closes within its timeout plus this".
MARGIN = 10.0


@contextmanager
def connected(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=MARGIN)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket, *, within: float) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not, in time)."""
    deadline = time.monotonic() + within
    received = bytearray()
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        except TimeoutError as exc:
            raise AssertionError(f"the server kept the connection open; it sent {bytes(received)!r}") from exc
        if not chunk:
            return bytes(received)
        received += chunk


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body, read from a kept-alive connection."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {bytes(data)!r}"
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return status, headers, body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, json.loads(body)


def healthz(sock: socket.socket) -> int:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    return read_response(sock)[0]


def stored_responses(database_url: str) -> int:
    with sqlite3.connect(database_url.removeprefix("sqlite+aiosqlite:///")) as db:
        count: int = db.execute("SELECT count(*) FROM responses").fetchone()[0]
    return count


def eventually_served(url: str) -> bool:
    """Whether a GET of `url` gets a 200 within the margin (a wait for the server, not a timing check)."""
    deadline = time.monotonic() + MARGIN
    while time.monotonic() < deadline:
        if httpx.get(url).status_code == 200:
            return True
        time.sleep(0.02)
    return False


def test_slow_headers_are_dropped_at_the_header_timeout(live_server) -> None:
    live = live_server(MODELS, server={"header_timeout": 0.5})
    with connected(live.server.port) as sock:
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: test\r\n")
        # A slowloris client: one more header byte every 50 ms, for as long as the server listens.
        answer = bytearray()
        deadline = time.monotonic() + 0.5 + MARGIN
        sock.settimeout(0.05)
        while time.monotonic() < deadline:
            try:
                sock.sendall(b"x")
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
        else:
            raise AssertionError("the server kept a slow-header client connected")
    status, headers, body = parse_answer(bytes(answer))
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "request_timeout"  # type: ignore[index]


def test_a_silent_connection_is_closed_without_an_answer(live_server) -> None:
    live = live_server(MODELS, server={"header_timeout": 0.5})
    with connected(live.server.port) as sock:
        assert read_until_closed(sock, within=0.5 + MARGIN) == b""


def test_oversize_headers_get_a_431(live_server) -> None:
    live = live_server(MODELS, server={"max_header_bytes": 2048})
    with connected(live.server.port) as sock:
        fits = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Fill: " + b"a" * 1900 + b"\r\n\r\n"
        assert len(fits) <= 2048
        sock.sendall(fits)
        assert read_response(sock)[0] == 200
        # The same connection's next request never ends its headers: refused once past the limit.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Fill: " + b"a" * 4096)
        status, headers, body = parse_answer(read_until_closed(sock, within=MARGIN))
    assert status == 431 and headers["connection"] == "close"
    assert body["error"] == {  # type: ignore[comparison-overlap]
        "message": "Request header fields too large: the limit is 2048 bytes.",
        "type": "invalid_request_error",
        "param": None,
        "code": "request_header_fields_too_large",
    }


def test_unfinished_headers_beyond_the_budget_are_dropped(live_server) -> None:
    budget, head = 64 * 1024, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Fill: " + b"a" * 3000
    live = live_server(MODELS, server={"max_header_bytes": 4096, "max_pending_header_bytes": budget})
    socks = [socket.create_connection(("127.0.0.1", live.server.port), timeout=MARGIN) for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(head)
        # Answered only after the server has read what was sent before it.
        assert httpx.get(f"{live.server.base_url}/healthz").status_code == 200
        served = dropped = 0
        for sock in socks:
            try:
                sock.sendall(b"\r\n\r\n")
                status = read_response(sock)[0]
            except (AssertionError, ConnectionResetError, BrokenPipeError):
                dropped += 1
            else:
                assert status == 200
                served += 1
    finally:
        for sock in socks:
            sock.close()
    # 40 unfinished heads of 3 KB do not fit in 64 KB: enough of them were dropped to fit; the rest
    # finished their request and were answered.
    assert served <= budget // len(head) and dropped == 40 - served and served > 0


def test_a_stalled_body_is_dropped_and_never_reaches_the_model(live_server, caplog) -> None:
    live = live_server(MODELS, server={"body_timeout": 0.5})
    database_url = live.server.settings.database_url
    assert database_url is not None
    body = json.dumps({"model": "chat", "input": "hi"}).encode()
    with connected(live.server.port) as sock:
        sock.sendall(
            b"POST /v1/responses HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY_A}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        assert read_until_closed(sock, within=0.5 + MARGIN) == b""
    assert stored_responses(database_url) == 0
    # A client dropped mid-body is not a server fault: nothing at error level.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # The same request sent whole is answered (and stored): the count above could have seen it.
    response = httpx.post(
        f"{live.server.base_url}/v1/responses", content=body, headers={"Authorization": f"Bearer {KEY_A}"}
    )
    assert response.status_code == 200 and response.json()["status"] == "completed"
    assert stored_responses(database_url) == 1


def test_an_answer_sent_before_the_body_ends_the_connection(live_server) -> None:
    live = live_server(MODELS, max_body_bytes=1024)
    headers = {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"}
    # A real client still uploading gets the early 413 (the server reads on and drops the rest).
    response = httpx.post(f"{live.server.base_url}/v1/responses", content=b"x" * 2_000_000, headers=headers)
    assert response.status_code == 413
    with connected(live.server.port) as sock:
        sock.sendall(
            b"POST /v1/responses HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n"
            + f"Authorization: Bearer {KEY_A}\r\n\r\n".encode()
            + b"x" * 5000
        )
        # Answered, then closed: the server does not wait for the other 95,000 bytes.
        status, _, _ = parse_answer(read_until_closed(sock, within=MARGIN))
    assert status == 413


def test_an_idle_keepalive_connection_is_closed(live_server) -> None:
    live = live_server(MODELS, server={"idle_timeout": 1})
    with connected(live.server.port) as sock:
        assert healthz(sock) == 200
        assert healthz(sock) == 200
        assert read_until_closed(sock, within=1 + MARGIN) == b""


def test_at_the_cap_the_longest_idle_connection_gives_way(live_server) -> None:
    live = live_server(MODELS, server={"max_connections": 3})
    socks = [socket.create_connection(("127.0.0.1", live.server.port), timeout=MARGIN) for _ in range(3)]
    try:
        for sock in socks:
            assert healthz(sock) == 200  # in order: the first is idle longest
        # A fourth client is served; the connection idle longest made room for it.
        response = httpx.get(f"{live.server.base_url}/healthz")
        assert response.status_code == 200
        assert read_until_closed(socks[0], within=MARGIN) == b""
        assert healthz(socks[2]) == 200
    finally:
        for sock in socks:
            sock.close()


def test_past_the_cap_with_every_connection_busy_a_newcomer_gets_a_503(live_server) -> None:
    live = live_server(MODELS, server={"max_connections": 2})
    request = {"model": "slow", "input": "hi", "stream": True}
    headers = {"Authorization": f"Bearer {KEY_A}"}
    with (
        httpx.Client(base_url=live.server.base_url) as first,
        httpx.Client(base_url=live.server.base_url) as second,
        first.stream("POST", "/v1/responses", json=request, headers=headers) as one,
        second.stream("POST", "/v1/responses", json=request, headers=headers) as two,
    ):
        assert one.status_code == two.status_code == 200
        refused = httpx.get(f"{live.server.base_url}/healthz")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1" and refused.headers["connection"] == "close"
        error = refused.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "server_overloaded"
        # A client that connects and says nothing gets the same answer at once: it need not wait.
        with connected(live.server.port) as silent:
            assert parse_answer(read_until_closed(silent, within=MARGIN))[0] == 503
    # The streams are over: the next client is served again (once the server has seen them end).
    assert eventually_served(f"{live.server.base_url}/healthz")


def test_the_cap_leaves_file_descriptors_in_reserve() -> None:
    settings = ServerSettings()
    assert connection_cap(settings, 20_000) == (10_000, 10_512)
    assert connection_cap(ServerSettings(max_connections=50_000), 20_000) == (18_976, 19_488)
    # A small limit keeps half of it for everything that is not a client connection.
    assert connection_cap(settings, 1024) == (512, 768)
