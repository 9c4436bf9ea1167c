"""`python -m bench.server_cost`: what the guarded protocol costs per request, next to plain uvicorn.

Both answer a trivial ASGI app (a small fixed JSON body, so that the server is most of the cost):
uvicorn's own httptools protocol configured as `respgate serve` had it, and the guarded protocol of
`respgate.http.server` with its default limits.

- In memory: each protocol is fed keep-alive requests directly (no sockets, no kernel), interleaved
  rounds, CPU time of the thread: the protocol's own cost, which a busy machine barely disturbs.
- Over loopback: two server processes on uvloop, pinned to the gateway core; rounds alternate at a
  fixed open-loop rate; latency percentiles (median over rounds) and server CPU per request (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import ServerState

from bench import procs, scenarios
from bench.procs import ROOT, Service
from bench.scenarios import Target
from respgate.config import ServerSettings
from respgate.http.server import build_server

BODY = b'{"status":"ok"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


class _Transport(asyncio.Transport):
    """Enough of a transport for the protocols to answer requests in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def plain_config(app: Any, port: int = 8080) -> uvicorn.Config:
    """uvicorn as `respgate serve` configured it before the guarded protocol."""
    return uvicorn.Config(app, port=port, http="httptools", lifespan="off", log_level="warning", access_log=False)


def in_memory(kind: str, requests: int) -> float:
    """µs per keep-alive request through the protocol alone: no sockets, no kernel, no other process."""
    if kind == "guarded":
        config = build_server(app, ServerSettings(), log_level="warning").config
    else:
        config = plain_config(app)
    config.load()
    request = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\n{}"
    loop = uvloop.new_event_loop()
    try:
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        transport = _Transport()
        protocol.connection_made(transport)

        async def drive() -> float:
            # CPU time of this thread: on a busy machine, time spent preempted is not the protocol's.
            start = time.thread_time()
            for _ in range(requests):
                protocol.data_received(request)
                await asyncio.sleep(0)  # the app's task answers in the loop's next step
            return time.thread_time() - start

        elapsed = loop.run_until_complete(drive())
        protocol.connection_lost(None)
    finally:
        loop.close()
    if transport.written < requests * len(BODY):
        raise RuntimeError(f"the {kind} protocol did not answer every request")
    return 1e6 * elapsed / requests


def run_server(kind: str, port: int) -> None:
    if kind == "guarded":
        server = build_server(app, ServerSettings(), port=port, log_level="warning")
    else:
        server = uvicorn.Server(plain_config(app, port=port))
    uvloop.run(server.serve())


@contextlib.contextmanager
def serve(kind: str) -> Iterator[Service]:
    port = procs.free_port()
    cmd = [sys.executable, "-m", "bench.server_cost", "--serve", kind, "--port", str(port)]
    env = {"PYTHONPATH": str(ROOT / "src")}
    with procs.service(f"server-cost-{kind}", cmd, port=port, cpus=procs.GATEWAY_CPUS, env=env) as svc:
        yield svc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server_cost", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", choices=("plain", "guarded"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        run_server(args.serve, args.port)
        return
    memory: dict[str, list[float]] = {"plain": [], "guarded": []}
    for _ in range(30):
        for kind, results in memory.items():
            results.append(in_memory(kind, 10_000))
    print("In memory, the protocol alone: CPU µs per keep-alive request (30 rounds of 10,000, interleaved)")
    for kind, results in memory.items():
        results.sort()
        print(f"  {kind:8s} best {results[0]:6.2f}, 10th percentile {results[3]:6.2f}, median {results[15]:6.2f}")
    runs: dict[str, list[dict[str, Any]]] = {}
    with serve("plain") as plain, serve("guarded") as guarded:
        targets = [
            Target(kind, f"{svc.url}/", {}, "ok", None, svc)
            for kind, svc in (("plain", plain), ("guarded", guarded))
        ]
        for _ in range(args.rounds):
            for target in targets:
                result = scenarios.run_target(target, rate=args.rate, duration=args.duration, warmup=0.5)
                runs.setdefault(target.name, []).append(result)
    print(
        f"Over loopback: {args.rounds} rounds at {args.rate:.0f} req/s, {args.duration:g} s each (medians over rounds)"
    )
    print("| server | p50 ms | p90 ms | p99 ms | server CPU µs/req (each round) | errors |")
    print("|---|---|---|---|---|---|")
    for name, results in runs.items():
        cells = [f"{statistics.median(r['latency_ms'][p] for r in results):.3f}" for p in ("p50", "p90", "p99")]
        cpus = [r["server_cpu_us_per_req"] for r in results]
        per_round = ", ".join(f"{cpu:.0f}" for cpu in cpus)
        cells.append(f"{statistics.median(cpus):.1f} ({per_round})")
        print(f"| {name} | " + " | ".join(cells) + f" | {sum(r['errors'] for r in results)} |")


if __name__ == "__main__":
    main()
