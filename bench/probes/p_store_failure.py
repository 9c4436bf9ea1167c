"""Probe 5: the final write of a response fails (the store refuses it), during a stream and without one.

While a 2-second stream runs, the `responses` table is made to refuse completed rows: on PostgreSQL a
`CHECK (status NOT IN ('completed', 'incomplete')) NOT VALID` constraint, on SQLite BEFORE INSERT/UPDATE
triggers that abort. Then a non-stream request meets the same refusal. Measured: how the stream ended
(its last event, and the error code of a `response.failed`), the non-stream status and body, what the
server logged for it, and what a later GET of the streamed response shows. The refusal is removed after.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.probes.client import Stream, call, stream
from bench.probes.db import Database, scratch_database
from bench.probes.p_odd import ERROR_RECORD
from bench.probes.registry import Context, Row, probe
from bench.probes.server import running, scripted

TARGET = "the stream ends with response.failed (code store_error); non-stream: a 500 logged exactly once; nothing half-stored visible"
FINAL = "('completed', 'incomplete')"


def _refuse(db: Database) -> None:
    if db.backend == "postgres":
        db.execute(
            f"ALTER TABLE responses ADD CONSTRAINT probe_refuse_final CHECK (status NOT IN {FINAL}) NOT VALID"
        )
        return
    for when in ("INSERT", "UPDATE"):
        db.execute(
            f"CREATE TRIGGER probe_refuse_final_{when.lower()} BEFORE {when} ON responses "
            f"WHEN NEW.status IN {FINAL} BEGIN SELECT RAISE(ABORT, 'probe: final write refused'); END;"
        )


def _allow(db: Database) -> None:
    if db.backend == "postgres":
        db.execute("ALTER TABLE responses DROP CONSTRAINT IF EXISTS probe_refuse_final")
        return
    for when in ("insert", "update"):
        db.execute(f"DROP TRIGGER IF EXISTS probe_refuse_final_{when}")


def _config(database_url: str) -> dict[str, Any]:
    words = " ".join(f"w{i}" for i in range(40))
    return {
        "database_url": database_url,
        "log_level": "info",
        "models": [scripted("steady", text=words, delay=0.05), scripted("quick", text="ok")],
    }


@probe("store_failure", "the final write of a response fails", per_backend=True, budget_s=20)
def run(ctx: Context) -> list[Row]:
    with (
        scratch_database(ctx.backend, ctx.scratch("store")) as db,
        running(ctx, "store-server", _config(db.url)) as server,
    ):
        first = threading.Event()
        got: list[Stream] = []
        body = {"model": "steady", "input": "hi", "stream": True}
        reader = threading.Thread(
            target=lambda: got.append(
                stream(server.url, "POST", "/v1/responses", body, timeout=30, on_event=lambda _e: first.set())
            ),
            daemon=True,
        )
        try:
            reader.start()
            first.wait(15)
            _refuse(db)
            reader.join(timeout=35)
            offset = server.log_size()
            plain = call(server.url, "POST", "/v1/responses", {"model": "quick", "input": "hi"})
            time.sleep(0.5)
            log = server.log_since(offset)
        finally:
            _allow(db)
        streamed = got[0] if got else Stream(status=0, end="no result")
        created = next((e for e in streamed.events if e.get("type") == "response.created"), None)
        response_id = created["response"]["id"] if created else None
        later = call(server.url, "GET", f"/v1/responses/{response_id}") if response_id else None
    failed = next((e for e in streamed.events if e.get("type") == "response.failed"), None)
    failed_code = ((failed or {}).get("response", {}).get("error") or {}).get("code")
    later_status = (later.json() or {}).get("status") if later and later.status == 200 else None
    records = len(ERROR_RECORD.findall(log))
    measured = {
        "stream_status": streamed.status,
        "stream_events": len(streamed.events),
        "stream_last_event": streamed.last,
        "stream_end": streamed.end,
        "stream_failed_code": failed_code,
        "get_after": {"status": later.status if later else None, "response_status": later_status},
        "nonstream_status": plain.status,
        "nonstream_body": plain.body.decode(errors="replace")[:300],
        "nonstream_error_records_logged": records,
        "nonstream_traceback_logged": "Traceback" in log,
    }
    stream_row = Row(
        "store_failure",
        "stream",
        ctx.backend,
        measured,
        f"last event {streamed.last} ({streamed.end}, {len(streamed.events)} events)"
        f"{', failed code ' + str(failed_code) if failed else ''}; later GET → "
        f"{later.status if later else '-'} {later_status or ''}",
        streamed.last == "response.failed" and failed_code == "store_error" and later_status != "completed",
        TARGET,
    )
    plain_row = Row(
        "store_failure",
        "non-stream",
        ctx.backend,
        measured,
        f"HTTP {plain.status} {plain.error_field('code') or ''}; error records logged {records}, "
        f"traceback {'yes' if 'Traceback' in log else 'no'}",
        plain.status == 500 and records == 1 and "Traceback" in log,
        TARGET,
    )
    return [stream_row, plain_row]
