"""Overhead at fixed load, maximum sustainable rate, streaming cost and state lookup."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from bench import gateways, procs
from bench.gateways import STREAM_TOKENS
from bench.procs import Service

PROMPT = "Say hello."
CHAT_BODY = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}]}
RESP_BODY = {"model": "bench", "input": PROMPT}


@dataclass(frozen=True)
class Target:
    """One way of sending the same logical request; `direct` names its baseline target."""

    name: str
    url: str
    body: dict[str, Any]
    expect: str
    direct: str | None = None
    service: Service | None = None


def targets(mock: Service, gateway: str | None, svc: Service | None, *, stream: bool) -> list[Target]:
    """The direct baselines plus one gateway's targets. Each gateway is measured in its own phase with
    its own baselines (named `direct-… [litellm phase]` for LiteLLM) so that an idle or backlogged
    other gateway never shares the core."""
    suffix, prefix = ("-500", f"/t{STREAM_TOKENS}") if stream else ("", "")
    extra: dict[str, Any] = {"stream": True} if stream else {}
    resp_expect = "response.completed" if stream else "completed"
    tag = "" if gateway in (None, "respgate") else f" [{gateway} phase]"
    chat, resp = f"direct-chat{tag}", f"direct-responses{tag}"
    out = [
        Target(
            chat,
            f"{mock.url}{prefix}/v1/chat/completions",
            {**CHAT_BODY, **extra},
            "[DONE]" if stream else "chat.completion",
        ),
        Target(resp, f"{mock.url}{prefix}/v1/responses", {**RESP_BODY, **extra}, resp_expect),
    ]
    if gateway is None or svc is None:
        return out
    url = f"{svc.url}/v1/responses"
    out.append(
        Target(
            f"{gateway}-passthrough",
            url,
            {**RESP_BODY, "model": f"bench-resp{suffix}", **extra},
            resp_expect,
            resp,
            svc,
        )
    )
    out.append(
        Target(
            f"{gateway}-bridge", url, {**RESP_BODY, "model": f"bench-cc{suffix}", **extra}, resp_expect, chat, svc
        )
    )
    if gateway == "respgate" and not stream:
        # What storing costs: the same requests with store=false (LiteLLM, without a database, stores nothing).
        out.append(
            Target(
                "respgate-passthrough-nostore",
                url,
                {**RESP_BODY, "model": "bench-resp", "store": False},
                resp_expect,
                resp,
                svc,
            )
        )
        out.append(
            Target(
                "respgate-bridge-nostore",
                url,
                {**RESP_BODY, "model": "bench-cc", "store": False},
                resp_expect,
                chat,
                svc,
            )
        )
    return out


def settle(svc: procs.Busy | None, *, quiet: float = 0.05, limit: float = 60.0) -> float:
    """Wait until the gateway has stopped working off a backlog (timed-out requests it still serves),
    so that the next run starts from an idle server; returns the seconds waited."""
    if svc is None:
        return 0.0
    start = time.monotonic()
    last = svc.cpu_seconds()
    while time.monotonic() - start < limit:
        time.sleep(0.5)
        now = svc.cpu_seconds()
        if now - last < quiet * 0.5:
            break
        last = now
    waited = time.monotonic() - start
    if waited > 1.0:
        procs.log(f"{svc.name} needed {waited:.1f} s to become idle")
    return waited


def run_target(
    target: Target,
    *,
    rate: float,
    duration: float,
    warmup: float,
    timeout: float = 10.0,
    keep_samples: bool = False,
) -> dict[str, Any]:
    cpu0 = target.service.cpu_seconds() if target.service else None
    result = procs.load(
        target.url, target.body, rate=rate, duration=duration, warmup=warmup, expect=target.expect, timeout=timeout
    )
    if target.service is not None and cpu0 is not None:
        sent = rate * (duration + warmup)
        result["server_cpu_us_per_req"] = 1e6 * (target.service.cpu_seconds() - cpu0) / sent
        result["server_rss_mib"] = target.service.rss_mib()
        result["settle_s"] = settle(target.service)
    if not keep_samples:
        result.pop("samples_ms", None)
    result["target"] = target.name
    result["direct"] = target.direct
    # The machine is shared: keep what else was running next to each number.
    result["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    procs.log(
        f"{target.name:36s} {rate:6.0f}/s p50 {result['latency_ms'].get('p50', float('nan')):8.3f} ms"
        f" p99 {result['latency_ms'].get('p99', float('nan')):9.3f} ms errors {result['errors']}"
        f" {result['error_kinds'] or ''}"
    )
    return result


def added(results: dict[str, dict[str, Any]], key: str = "latency_ms") -> dict[str, dict[str, float]]:
    """Via-gateway minus direct, per percentile, for every gateway target with a direct baseline."""
    out: dict[str, dict[str, float]] = {}
    for name, res in results.items():
        base_name = res.get("direct")
        if not base_name or base_name not in results:
            continue
        base, via = results[base_name][key], res[key]
        out[name] = {p: via[p] - base[p] for p in ("p50", "p90", "p99", "p99.9", "max", "mean") if p in via}
    return out


def phases(
    *, want_litellm: bool, db: str, skipped: dict[str, str]
) -> Iterator[tuple[Service, str | None, Service | None]]:
    """(mock, gateway name, gateway) for respgate, then LiteLLM; each gateway runs alone with a fresh mock.
    A gateway that cannot start is recorded in `skipped`; the mock baseline still runs."""
    plan = [("respgate", gateways.respgate_available())]
    if want_litellm:
        plan.append(("litellm", gateways.ensure_litellm()))
    ran_any = False
    for name, why in plan:
        if why is not None:
            skipped[name] = why
            continue
        with ExitStack() as es:
            mock = es.enter_context(procs.mock())
            svc = es.enter_context(
                gateways.respgate(mock.url, database_url=db) if name == "respgate" else gateways.litellm(mock.url)
            )
            for model in ("bench-resp", "bench-cc"):
                status, body = procs.http_json("POST", f"{svc.url}/v1/responses", {**RESP_BODY, "model": model})
                if status != 200:
                    raise RuntimeError(f"{name} {model} answered {status}: {str(body)[:500]}")
            ran_any = True
            yield mock, name, svc
    if not ran_any:
        with procs.mock() as mock:
            yield mock, None, None


def overhead(
    *,
    rates: list[float],
    duration: float,
    warmup: float,
    want_litellm: bool,
    db: str,
    samples_at: float | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rates": {str(int(r)): {} for r in rates},
        "added_ms": {},
        "skipped": {},
        "mock_cpu_us_per_req": {},
    }
    for mock, gateway, svc in phases(want_litellm=want_litellm, db=db, skipped=out["skipped"]):
        tgts = targets(mock, gateway, svc, stream=False)
        cpu0, sent = mock.cpu_seconds(), 0.0
        overloaded: dict[str, float] = {}
        for rate in rates:
            per = out["rates"][str(int(rate))]
            for tgt in tgts:  # interleaved per rate so that drift in machine load hits every target alike
                if tgt.name in overloaded:
                    # Its backlog would take minutes to drain and spoil the runs after it.
                    out.setdefault("not_run", {})[f"{tgt.name}@{rate:.0f}"] = (
                        f"more than 10% errors at {overloaded[tgt.name]:.0f}/s already"
                    )
                    continue
                per[tgt.name] = res = run_target(
                    tgt, rate=rate, duration=duration, warmup=warmup, keep_samples=samples_at == rate
                )
                sent += rate * (duration + warmup)
                if tgt.service is not None and res["error_rate"] > 0.10:
                    overloaded[tgt.name] = rate
        out["mock_cpu_us_per_req"][gateway or "direct"] = 1e6 * (mock.cpu_seconds() - cpu0) / sent
    out["added_ms"] = {rate: added(per) for rate, per in out["rates"].items()}
    return out


def max_rate(*, ladder: list[float], duration: float, want_litellm: bool, db: str) -> dict[str, Any]:
    """Climb the ladder per gateway target until a step fails (>=1% errors, a 1 s timeout counting): an
    open-loop run past saturation shows up as latency growing for the whole run, which the timeout
    turns into errors."""
    out: dict[str, Any] = {
        "criterion": "errors < 1% (a request not answered within 1 s counts as an error) "
        "and >= 97% of the scheduled requests completed",
        "targets": {},
        "skipped": {},
    }
    for mock, _gateway, svc in phases(want_litellm=want_litellm, db=db, skipped=out["skipped"]):
        for tgt in targets(mock, _gateway, svc, stream=False):
            if tgt.service is None:
                continue
            steps, best = [], 0.0
            for rate in ladder:
                res = run_target(tgt, rate=rate, duration=duration, warmup=1.0, timeout=1.0)
                steps.append({k: res[k] for k in ("rate", "achieved_rate", "error_rate", "latency_ms")})
                if res["error_rate"] >= 0.01 or res["achieved_rate"] < 0.97 * rate:
                    break
                best = rate
            out["targets"][tgt.name] = {"max_sustainable_rate": best, "steps": steps}
    return out


def streaming(*, rate: float, duration: float, warmup: float, want_litellm: bool, db: str) -> dict[str, Any]:
    out: dict[str, Any] = {"tokens": STREAM_TOKENS, "rate": rate, "results": {}, "skipped": {}}
    per: dict[str, dict[str, Any]] = out["results"]
    for mock, gateway, svc in phases(want_litellm=want_litellm, db=db, skipped=out["skipped"]):
        for tgt in targets(mock, gateway, svc, stream=True):
            per[tgt.name] = run_target(tgt, rate=rate, duration=duration, warmup=warmup)
    out["added_total_ms"] = added(per)
    out["added_ttfe_ms"] = added(per, "ttfb_ms")
    out["per_token_us"] = {
        name: {
            "added_p50": 1e3 * d["p50"] / STREAM_TOKENS,
            "server_cpu": per[name].get("server_cpu_us_per_req", 0.0) / STREAM_TOKENS,
        }
        for name, d in out["added_total_ms"].items()
    }
    return out


def _chain(svc: Service, model: str, turns: int) -> str:
    """Create a chain of `turns` stored responses, each continuing the previous; return the last id."""
    prev: str | None = None
    for i in range(turns):
        body: dict[str, Any] = {"model": model, "input": f"Turn {i}: say hello again."}
        if prev:
            body["previous_response_id"] = prev
        status, data = procs.http_json("POST", f"{svc.url}/v1/responses", body)
        if status != 200:
            raise RuntimeError(f"chain turn {i} answered {status}: {str(data)[:300]}")
        prev = data["id"]
    assert prev is not None
    return prev


def state(
    *, chains: list[int], rate: float, duration: float, warmup: float, databases: dict[str, str], models: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"rate": rate, "databases": {}}
    with procs.mock() as mock:
        for db_name, url in databases.items():
            with gateways.respgate(mock.url, database_url=url, name=f"respgate-{db_name}") as rg:
                per_db: dict[str, Any] = {}
                for model in models:
                    heads = {n: _chain(rg, model, n) for n in chains}
                    body: dict[str, Any] = {"model": model, "input": PROMPT}
                    runs = {
                        "unchained": run_target(
                            Target(
                                f"{db_name}/{model}/unchained",
                                f"{rg.url}/v1/responses",
                                body,
                                "completed",
                                None,
                                rg,
                            ),
                            rate=rate,
                            duration=duration,
                            warmup=warmup,
                        )
                    }
                    for n, head in heads.items():
                        tgt = Target(
                            f"{db_name}/{model}/chain-{n}",
                            f"{rg.url}/v1/responses",
                            {**body, "previous_response_id": head},
                            "completed",
                            None,
                            rg,
                        )
                        res = run_target(tgt, rate=rate, duration=duration, warmup=warmup)
                        res["direct"] = "unchained"
                        runs[f"chain-{n}"] = res
                    per_db[model] = {"runs": runs, "added_ms": added(runs)}
                out["databases"][db_name] = per_db
    return out
