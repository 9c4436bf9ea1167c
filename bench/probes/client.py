"""A plain HTTP/1.1 client on http.client: exact bodies, bounded waits, SSE read event by event."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int  # 0: no answer (timeout, refused, reset)
    headers: dict[str, str]
    body: bytes
    seconds: float
    error: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error_field(self, name: str) -> Any:
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return data["error"].get(name)
        return None

    def short(self) -> str:
        if self.status == 0:
            return f"no answer after {self.seconds:.1f} s ({self.error})"
        return f"{self.status} in {self.seconds:.2f} s"


def _connect(base: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)


def _encode(body: Any) -> bytes | None:
    if body is None or isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    timeout: float = 30.0,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request on a fresh connection; `timeout` bounds each socket wait."""
    raw = _encode(body)
    sent = {"Content-Type": "application/json", "Connection": "close", **(headers or {})}
    if key:
        sent["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    conn = _connect(base, timeout)
    try:
        conn.request(method, path, body=raw, headers=sent)
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(0, {}, b"", time.monotonic() - started, error=type(exc).__name__)
    finally:
        conn.close()


@dataclass
class Stream:
    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    end: str = ""  # how the stream ended: eof, timeout, or the error
    seconds: float = 0.0
    body: bytes = b""  # the body of a non-SSE answer

    @property
    def types(self) -> list[str]:
        return [str(event.get("type")) for event in self.events]

    @property
    def last(self) -> str | None:
        return self.types[-1] if self.events else None


def stream(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
    timeout: float = 30.0,
    on_event: Any = None,
) -> Stream:
    """Read an SSE answer event by event until EOF or until `timeout` seconds have passed in all."""
    sent = {"Content-Type": "application/json", "Accept": "text/event-stream", "Connection": "close"}
    if key:
        sent["Authorization"] = f"Bearer {key}"
    started = time.monotonic()
    deadline = started + timeout
    conn = _connect(base, timeout)
    result = Stream(status=0)
    try:
        conn.request(method, path, body=_encode(body), headers=sent)
        resp = conn.getresponse()
        result.status = resp.status
        if "text/event-stream" not in (resp.getheader("content-type") or ""):
            result.body = resp.read()
            result.end = "eof"
            return result
        data: list[bytes] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.end = "timeout"
                break
            if conn.sock is not None:
                conn.sock.settimeout(remaining)
            line = resp.readline()
            if not line:
                result.end = "eof"
                break
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].strip())
            elif not line and data:
                event = json.loads(b"\n".join(data))
                data = []
                result.events.append(event)
                if on_event is not None:
                    on_event(event)
    except TimeoutError:
        result.end = "timeout"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        result.end = f"error: {type(exc).__name__}"
    finally:
        result.seconds = time.monotonic() - started
        conn.close()
    return result


class Poller:
    """Polls a GET path in a thread (fresh connection each time) and records each answer's latency."""

    def __init__(self, base: str, path: str = "/healthz", *, every: float = 0.1, timeout: float = 60.0) -> None:
        self.base = base
        self.path = path
        self.every = every
        self.timeout = timeout
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = call(self.base, "GET", self.path, timeout=self.timeout)
            self.latencies.append(answer.seconds)
            if answer.status != 200:
                self.failures += 1
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        if not lat:
            return {"polls": 0}
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return {
            "polls": len(lat),
            "max_s": round(lat[-1], 3),
            "p99_s": round(p99, 3),
            "p50_s": round(lat[len(lat) // 2], 4),
            "failed": self.failures,
        }
