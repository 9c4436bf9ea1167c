"""`python -m bench.connections [--src DIR]`: can clients hoard a real `respgate serve`'s connections?

Each probe runs against a fresh `python -m respgate serve` process started from `--src` (default this
tree's `src`; `--src /old/checkout/src` measures another version with the same probes):

- slow clients: a header byte every 0.5 s (slowloris), a connection that sends nothing, and a body
  that stops after 10 of its 100 bytes; how long the server keeps each (up to `--slow-limit` s) and
  what it answers;
- idle flood: `--idle` idle connections (default 20,000, half of them from a helper process), then
  one new client: is it answered, how fast; the server's open descriptors and RSS meanwhile;
- header flood: 400 MiB of unfinished headers, as 1 MiB heads and as heads just under 32 KiB: the
  server's RSS before and after, and its peak (VmHWM), from /proc.

`--save FILE` keeps the JSON; `--compare BEFORE AFTER` prints the probe → before → after table.
`bench/probes/p_connections.py` runs the same measurements (`measure`) as the `connections` probe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import yaml

from bench import procs, scenarios
from bench.procs import ROOT, Service

MIB = 1024 * 1024
REQUEST_BODY = json.dumps({"model": "chat", "input": "hi"}).encode()
HEAD = b"POST /v1/responses HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"


class Served(Protocol):
    """A running server: `procs.Service` here, `bench.probes.server.Server` in the probe."""

    name: str
    port: int

    @property
    def pid(self) -> int: ...

    def cpu_seconds(self) -> float: ...


# Starts a fresh server under the given name, for one measurement.
Serve = Callable[[str], AbstractContextManager[Served]]


def log(message: str) -> None:
    print(f"[connections {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def config(database_url: str) -> dict[str, Any]:
    """The server's config: one scripted model, every server setting at its default."""
    return {
        "api_keys": [],
        "database_url": database_url,
        "log_level": "warning",
        "models": [{"name": "chat", "provider": "scripted", "script": [{"text": "Hello."}]}],
    }


@contextlib.contextmanager
def server(src: Path, name: str) -> Iterator[Service]:
    """`python -m respgate serve` from `src` with one scripted model, on a free port."""
    work = Path(tempfile.mkdtemp(prefix="respgate-connections-"))
    (work / "config.yaml").write_text(yaml.safe_dump(config(f"sqlite+aiosqlite:///{work / 'respgate.sqlite3'}")))
    port = procs.free_port()
    cmd = [sys.executable, "-m", "respgate", "serve", "--config", str(work / "config.yaml"), "--port", str(port)]
    try:
        with procs.service(name, cmd, port=port, cpus=procs.GATEWAY_CPUS, env={"PYTHONPATH": str(src)}) as svc:
            yield svc
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _serving(serve: Serve, name: str) -> Iterator[Served]:
    """A fresh server that has answered a plain request."""
    with serve(name) as svc:
        answer = request(svc.port, timeout=30)
        if answer.get("status") != 200:
            raise RuntimeError(f"the server did not answer a plain request: {answer}")
        yield svc


def proc_status(svc: Served) -> dict[str, float]:
    """VmRSS and VmHWM in MiB, and the number of open descriptors."""
    out: dict[str, float] = {"fds": float(len(os.listdir(f"/proc/{svc.pid}/fd")))}
    for line in Path(f"/proc/{svc.pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def request(port: int, *, timeout: float) -> dict[str, Any]:
    """One POST /v1/responses on a new connection: its status and milliseconds, or what went wrong."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(max(timeout - (time.monotonic() - start), 0.01))
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(REQUEST_BODY) + REQUEST_BODY)
            data = bytearray()
            while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
                chunk = sock.recv(65536)
                if not chunk:
                    return {"error": f"closed after {bytes(data[:60])!r}"}
                data += chunk
    except TimeoutError:
        return {"error": f"no answer within {timeout:g} s"}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"status": int(data.split(b" ", 2)[1]), "ms": round(1000 * (time.monotonic() - start), 2)}


def _length(data: bytearray) -> int:
    for line in bytes(data).partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def status_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode("latin-1") if data else ""


def slow_clients(port: int, limit: float) -> dict[str, Any]:
    """How long the server keeps a slowloris, a silent connection and a stalled body (None: kept)."""
    socks = {
        name: socket.create_connection(("127.0.0.1", port)) for name in ("slow_header", "silent", "stalled_body")
    }
    socks["slow_header"].sendall(HEAD + b"X-Slow: ")
    socks["stalled_body"].sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b"0123456789")
    start = time.monotonic()
    received = {name: b"" for name in socks}
    closed: dict[str, float | None] = {name: None for name in socks}
    next_byte = start + 0.5
    try:
        while any(closed[name] is None for name in socks) and time.monotonic() - start < limit:
            waiting = [sock for name, sock in socks.items() if closed[name] is None]
            readable, _, _ = select.select(waiting, [], [], 0.1)
            for name, sock in socks.items():
                if sock not in readable:
                    continue
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                received[name] += chunk
                if not chunk:
                    closed[name] = round(time.monotonic() - start, 2)
            if time.monotonic() >= next_byte and closed["slow_header"] is None:
                next_byte += 0.5
                with contextlib.suppress(OSError):
                    socks["slow_header"].sendall(b"x")
    finally:
        for sock in socks.values():
            sock.close()
    return {name: {"closed_after_s": closed[name], "answer": status_line(received[name])} for name in socks}


def _open_idle(port: int, count: int) -> tuple[list[socket.socket], str | None]:
    """Up to `count` idle connections; stops at the first that cannot be made (and says why)."""
    socks: list[socket.socket] = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError as exc:
            return socks, f"{type(exc).__name__}: {exc}"
    return socks, None


def _hold_idle(port: int, count: int, conn: Connection) -> None:
    """In a helper process: open idle connections, report (opened, closed by the server) when asked."""
    _raise_fd_limit()
    socks, stopped = _open_idle(port, count)
    conn.send((len(socks), stopped))
    conn.recv()
    conn.send(_count_closed(socks))
    conn.recv()


def _raise_fd_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def idle_flood(svc: Served, count: int) -> dict[str, Any]:
    """`count` idle connections, half from a helper process (one process may not hold as many
    descriptors as the server), then one new client."""
    share = min(count // 2, _raise_fd_limit() - 64)
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    helper = context.Process(target=_hold_idle, args=(svc.port, count - share, child), daemon=True)
    before = proc_status(svc)
    start = time.monotonic()
    helper.start()
    socks, stopped = _open_idle(svc.port, share)
    try:
        helper_opened, helper_stopped = parent.recv()
        opened_s = time.monotonic() - start
        time.sleep(1.0)  # let the server accept what the kernel queued for it
        during = proc_status(svc)
        answer = request(svc.port, timeout=10)
        parent.send("count")
        closed_by_server = _count_closed(socks) + parent.recv()
    finally:
        for sock in socks:
            sock.close()
        parent.send("quit")
        helper.join(timeout=30)
    return {
        "asked": count,
        "opened": len(socks) + helper_opened,
        "opened_s": round(opened_s, 2),
        "stopped_by": stopped or helper_stopped,
        "server_before": before,
        "server_during": during,
        "new_client": answer,
        "closed_by_server": closed_by_server,
    }


def _count_closed(socks: list[socket.socket]) -> int:
    """How many of `socks` the server has closed (readable with nothing to read, or reset)."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    closed = 0
    for fd, _ in poller.poll(0):
        try:
            by_fd[fd].setblocking(False)
            if not by_fd[fd].recv(1, socket.MSG_PEEK):
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def header_flood(svc: Served, *, total: int, head: int) -> dict[str, Any]:
    """`total` bytes of unfinished headers in heads of `head` bytes, each on its own connection."""
    data = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Fill: "
    data += b"a" * (head - len(data))
    before = proc_status(svc)
    socks: list[socket.socket] = []
    cut = 0
    start = time.monotonic()
    try:
        for _ in range(total // head):
            sock = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            socks.append(sock)
            try:
                sock.sendall(data)
            except OSError:
                cut += 1
        sent_s = time.monotonic() - start
        scenarios.settle(svc)
        after = proc_status(svc)
        answers: dict[str, int] = {}
        for sock in socks:
            sock.setblocking(False)
            try:
                line = status_line(sock.recv(256)) or "closed"
            except BlockingIOError:
                line = "nothing (still open)"
            except OSError:
                line = "reset"
            answers[line] = answers.get(line, 0) + 1
    finally:
        for sock in socks:
            sock.close()
    return {
        "connections": len(socks),
        "head_bytes": head,
        "sent_s": round(sent_s, 2),
        "send_cut": cut,
        "server_before": before,
        "server_after": after,
        "answers": answers,
    }


SLOW_CLIENTS = {
    "slow_header": "slow-header client (a byte every 0.5 s)",
    "silent": "connection that sends nothing",
    "stalled_body": "body stalled after 10 of 100 bytes",
}
FLOODS = {"flood_1mib": MIB, "flood_30kib": 30 * 1024}


def measure(serve: Serve, *, slow_limit: float, idle: int, flood_mib: int) -> dict[str, Any]:
    """Every measurement, each on a fresh server from `serve`."""
    results: dict[str, Any] = {"slow_limit": slow_limit}
    log(f"slow clients (up to {slow_limit:g} s)")
    with _serving(serve, "connections-slow") as svc:
        results["slow"] = slow_clients(svc.port, slow_limit)
    log(f"{idle} idle connections, then a new client")
    with _serving(serve, "connections-idle") as svc:
        results["idle"] = idle_flood(svc, idle)
    for label, head in FLOODS.items():
        log(f"{flood_mib} MiB of unfinished headers in heads of {head} bytes")
        with _serving(serve, f"connections-{label}") as svc:
            results[label] = header_flood(svc, total=flood_mib * MIB, head=head)
    results["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    return results


def run(src: Path, *, slow_limit: float, idle: int, flood_mib: int) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    results: dict[str, Any] = {"src": str(src), "commit": commit, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log(f"against {src}")
    return results | measure(partial(server, src), slow_limit=slow_limit, idle=idle, flood_mib=flood_mib)


def lines(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """One readable line per measurement: (key, label, outcome); the key is one of `SLOW_CLIENTS`,
    `idle`, `new_client` or one of `FLOODS`."""
    out: list[tuple[str, str, str]] = []
    limit = results.get("slow_limit") or 0
    for name, label in SLOW_CLIENTS.items():
        probe = results["slow"][name]
        if probe["closed_after_s"] is None:
            out.append((name, label, f"still open after {limit or 'the limit'} s"))
        else:
            answer = f", answered {probe['answer']}" if probe["answer"] else ", no answer"
            out.append((name, label, f"closed after {probe['closed_after_s']:.1f} s{answer}"))
    idle = results["idle"]
    held = idle["server_during"]
    out.append(
        (
            "idle",
            f"{idle['asked']:,} idle connections",
            f"{idle['opened']:,} opened in {idle['opened_s']:.1f} s"
            + (f" (then {idle['stopped_by']})" if idle["stopped_by"] else "")
            + f"; server: {held['fds']:,.0f} fds, RSS {held['VmRSS']:.0f} MiB; "
            f"{idle['closed_by_server']:,} closed by it",
        )
    )
    answer = idle["new_client"]
    served = f"{answer['status']} in {answer['ms']:.1f} ms" if "status" in answer else None
    out.append(("new_client", "then a new client", served or f"not served: {answer['error']}"))
    for name in FLOODS:
        flood = results[name]
        before, after = flood["server_before"], flood["server_after"]
        total = flood["connections"] * flood["head_bytes"] // MIB
        label = (
            f"{total:,} MiB of unfinished headers, {flood['connections']:,} x {flood['head_bytes'] // 1024:,} KiB"
        )
        answers = ", ".join(f"{count:,} {line}" for line, count in sorted(flood["answers"].items()))
        outcome = (
            f"RSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB (+{after['VmRSS'] - before['VmRSS']:.0f}, "
            f"peak {after['VmHWM']:.0f}); answers: {answers}"
        )
        out.append((name, label, outcome))
    return out


def rows(results: dict[str, Any]) -> dict[str, str]:
    """One readable line per measurement, by label."""
    return {label: outcome for _, label, outcome in lines(results)}


def table(columns: list[tuple[str, dict[str, str]]]) -> str:
    names = [name for name, _ in columns]
    lines = ["| probe | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label in columns[0][1]:
        lines.append(f"| {label} | " + " | ".join(col.get(label, "") for _, col in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.connections",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the source tree to serve")
    parser.add_argument("--slow-limit", type=float, default=40.0, help="how long to watch slow clients (s)")
    parser.add_argument("--idle", type=int, default=20_000, help="idle connections to open")
    parser.add_argument("--flood-mib", type=int, default=400, help="unfinished header bytes to send")
    parser.add_argument("--save", type=Path, help="write the results here (JSON)")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), help="print a table")
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(path.read_text()) for path in args.compare)
        columns = [(f"before ({before['commit'] or before['src']})", rows(before))]
        columns.append((f"after ({after['commit'] or after['src']})", rows(after)))
        print(table(columns))
        return
    results = run(args.src.resolve(), slow_limit=args.slow_limit, idle=args.idle, flood_mib=args.flood_mib)
    if args.save:
        args.save.write_text(json.dumps(results, indent=1))
    print(f"respgate at {results['src']} ({results['commit']}), {results['started']}")
    print(table([("result", rows(results))]))


if __name__ == "__main__":
    main()
