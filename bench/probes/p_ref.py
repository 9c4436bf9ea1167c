"""Probe 1: `$ref` in client schemas (function `parameters`, `text.format.schema`) to files and URLs.

The scripted models answer with output that reaches the `$ref` when validated (tool arguments `{"x": 1}`,
JSON text `{"x": 1}`), so a server that resolves references lazily is caught too. Measured: the status
and `param` of each answer, whether the secret came back (in the answer or the stored response), opens
of the secret files (inotify), connections to a recording listener; and, with a listener that accepts
and never answers, how long `/healthz` and another tenant's requests waited.
"""

from __future__ import annotations

import json
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from bench.probes.client import Answer, Poller, call
from bench.probes.db import scratch_database
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted
from bench.probes.sockets import RecordingListener
from bench.probes.watch import FileWatch

ATTACKER, TENANT = "sk-probe-attacker", "sk-probe-tenant"
HOLD_S = 12.0  # how long the silent listener holds the server's connection (the probe's bound is ~20 s)
TARGET = "400 naming the field before any model runs; no file opened, no connection, secret never returned"
PLACES = {"tools": "tools[0].parameters", "text": "text.format.schema"}


def _body(place: str, ref: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"x": {"$ref": ref}}}
    if place == "tools":
        return {
            "model": "tool-model",
            "input": "call the tool",
            "tools": [{"type": "function", "name": "probe_tool", "parameters": schema, "strict": False}],
        }
    return {
        "model": "json-model",
        "input": "answer in JSON",
        "text": {"format": {"type": "json_schema", "name": "probe", "schema": schema, "strict": False}},
    }


def _config(database_url: str) -> dict[str, Any]:
    return {
        "api_keys": [ATTACKER, TENANT],
        "database_url": database_url,
        "log_level": "warning",
        "models": [
            scripted("tool-model", tool_calls=[{"name": "probe_tool", "arguments": {"x": 1}}]),
            scripted("json-model", text='{"x": 1}'),
            scripted("plain", text="ok"),
        ],
    }


def _stored_text(base: str, answer: Answer) -> str:
    data = answer.json()
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return ""
    return call(base, "GET", f"/v1/responses/{data['id']}", key=ATTACKER).body.decode(errors="replace")


@probe("ref", "$ref to local files and URLs in client schemas", per_backend=False, budget_s=45)
def run(ctx: Context) -> list[Row]:
    work = ctx.scratch("ref")
    secret = f"PROBE-SECRET-{secrets.token_hex(8)}"
    files = {
        "secret.json": json.dumps({"enum": [secret]}),
        "secret.txt": secret + "\n",
    }
    for name, text in files.items():
        (work / name).write_text(text)
    rows: list[Row] = []
    with (
        scratch_database(ctx.backend, work) as db,
        running(ctx, "ref-server", _config(db.url)) as server,
        RecordingListener() as listener,
    ):
        # A relative reference resolves against the server's working directory, if at all.
        shutil.copy(work / "secret.json", server.dir / "schema.json")
        watched = [work / "secret.json", work / "secret.txt", server.dir / "schema.json"]
        groups = {
            "file": [f"file://{work / 'secret.json'}", f"file://{work / 'secret.txt'}", "schema.json"],
            "http": [f"http://127.0.0.1:{listener.port}/schema.json", f"https://127.0.0.1:{listener.port}/s.json"],
            "other": ["urn:probe:secret", f"//127.0.0.1:{listener.port}/x.json"],
        }
        for place, field in PLACES.items():
            for group, refs in groups.items():
                rows.append(_case(ctx, server.url, place, field, group, refs, secret, watched, listener))
        for place, field in PLACES.items():
            rows.append(_hang(ctx, server.url, place, field))
    return rows


def _case(
    ctx: Context,
    base: str,
    place: str,
    field: str,
    group: str,
    refs: list[str],
    secret: str,
    watched: list[Path],
    listener: RecordingListener,
) -> Row:
    watch = FileWatch(watched)
    before = listener.connections
    answers: list[dict[str, Any]] = []
    leaked = 0
    try:
        for ref in refs:
            answer = call(base, "POST", "/v1/responses", _body(place, ref), key=ATTACKER, timeout=30)
            seen = answer.body.decode(errors="replace") + _stored_text(base, answer)
            leaked += secret in seen
            data = answer.json() or {}
            answers.append(
                {
                    "ref": ref,
                    "status": answer.status,
                    "param": answer.error_field("param"),
                    "response_status": data.get("status") if isinstance(data, dict) else None,
                    "secret_returned": secret in seen,
                }
            )
        time.sleep(0.2)
        watch.poll()
    finally:
        watch.close()
    connections = listener.connections - before
    opens = sum(watch.opens.values())
    refused = all(a["status"] == 400 and str(a["param"] or "").startswith(field) for a in answers)
    statuses = ",".join(
        str(a["status"]) + (f"/{a['response_status']}" if a["response_status"] else "") for a in answers
    )
    opened = ", ".join(f"{name} {count}" for name, count in watch.opens.items() if count) or "none"
    outcome = f"answers {statuses}; secret returned {leaked}/{len(refs)}; files opened: {opened}; connections {connections}"
    ok = refused and leaked == 0 and opens == 0 and connections == 0
    return Row(
        probe="ref",
        case=f"{field} → {group}",
        backend=ctx.backend,
        measured={
            "answers": answers,
            "file_opens": watch.opens,
            "file_reads": watch.reads,
            "connections": connections,
        },
        outcome=outcome,
        ok=ok,
        target=TARGET,
    )


def _hang(ctx: Context, base: str, place: str, field: str) -> Row:
    tenant: list[Answer] = []
    attacker: list[Answer] = []
    stop = threading.Event()

    def tenant_loop() -> None:
        while not stop.is_set():
            tenant.append(
                call(base, "POST", "/v1/responses", {"model": "plain", "input": "hi"}, key=TENANT, timeout=40)
            )
            stop.wait(0.5)

    with RecordingListener(hold=True) as silent, Poller(base, every=0.1, timeout=40) as health:
        worker = threading.Thread(target=tenant_loop, daemon=True)
        worker.start()
        time.sleep(1.0)
        body = _body(place, f"http://127.0.0.1:{silent.port}/schema.json")
        hit = threading.Thread(
            target=lambda: attacker.append(call(base, "POST", "/v1/responses", body, key=ATTACKER, timeout=40)),
            daemon=True,
        )
        hit.start()
        time.sleep(HOLD_S)
        held = silent.connections
        silent.release()
        hit.join(timeout=10)
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=45)
    tenant_max = max((a.seconds for a in tenant), default=0.0)
    hp = health.summary()
    answer = attacker[0] if attacker else None
    measured = {
        "listener_connections": held,
        "healthz": hp,
        "tenant_requests": len(tenant),
        "tenant_max_s": round(tenant_max, 3),
        "tenant_failed": sum(a.status != 200 for a in tenant),
        "attacker": answer.short() if answer else "no answer",
        "attacker_param": answer.error_field("param") if answer else None,
        "hold_s": HOLD_S,
    }
    outcome = (
        f"listener held {held} connection(s) {HOLD_S:.0f} s; /healthz max {hp.get('max_s')} s; "
        f"other tenant max {tenant_max:.2f} s; attacker {measured['attacker']}"
    )
    ok = held == 0 and float(hp.get("max_s", 99)) < 0.5 and tenant_max < 1.0
    return Row(
        probe="ref",
        case=f"{field} → silent listener",
        backend=ctx.backend,
        measured=measured,
        outcome=outcome,
        ok=ok,
        target="no connection; /healthz and other tenants unaffected (< 0.5 s)",
    )
