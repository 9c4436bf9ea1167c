"""`python -m bench.ab --a OLD/src --b src`: the added latency of two source trees, side by side in one run.

Both trees serve the same config (`python -m respgate serve`, PYTHONPATH set to each tree) next to one
mock upstream; rounds alternate A, B and the direct baselines at a fixed rate, so that drift in the
machine's load hits both alike. Prints added p50/p90/p99 per tree and target (median over rounds),
and each tree's server CPU per request.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench import gateways, procs, scenarios
from bench.procs import LOGS, WORK, Service
from bench.scenarios import RESP_BODY, Target


@contextlib.contextmanager
def serve(src: Path, mock_url: str, name: str) -> Iterator[Service]:
    port = procs.free_port()
    LOGS.mkdir(parents=True, exist_ok=True)
    cfg = LOGS / f"{name}.yaml"
    database = gateways.sqlite_url(WORK / f"{name}.sqlite3")
    config = {"api_keys": [], "database_url": database, "log_level": "warning"}
    config["models"] = gateways.respgate_models(mock_url)
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "respgate", "serve", "--config", str(cfg), "--port", str(port)]
    with procs.service(name, cmd, port=port, cpus=procs.GATEWAY_CPUS, env={"PYTHONPATH": str(src)}) as svc:
        for model in ("bench-resp", "bench-cc"):
            status, body = procs.http_json("POST", f"{svc.url}/v1/responses", {**RESP_BODY, "model": model})
            if status != 200:
                raise RuntimeError(f"{name} {model} answered {status}: {str(body)[:300]}")
        yield svc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--a", type=Path, required=True, help="source tree A (e.g. the old checkout's src)")
    parser.add_argument("--b", type=Path, required=True, help="source tree B")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        mock = stack.enter_context(procs.mock())
        trees = {"A": stack.enter_context(serve(args.a.resolve(), mock.url, "ab-a"))}
        trees["B"] = stack.enter_context(serve(args.b.resolve(), mock.url, "ab-b"))
        direct = scenarios.targets(mock, None, None, stream=False)
        plan = list(direct)
        for label, svc in trees.items():
            for model, base in (("bench-resp", "direct-responses"), ("bench-cc", "direct-chat")):
                body = {**RESP_BODY, "model": model}
                plan.append(Target(f"{label}-{model}", f"{svc.url}/v1/responses", body, "completed", base, svc))
        for _ in range(args.rounds):
            for target in plan:
                result = scenarios.run_target(target, rate=args.rate, duration=args.duration, warmup=0.5)
                runs.setdefault(target.name, []).append(result)
    print(f"A = {args.a}\nB = {args.b}\n{args.rounds} rounds at {args.rate:.0f} req/s, {args.duration:g} s each")
    print("| target | added p50 ms | added p90 ms | added p99 ms | server CPU µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for name, results in runs.items():
        base = results[0]["direct"]
        if base is None:
            continue
        added = [
            {p: r["latency_ms"][p] - b["latency_ms"][p] for p in ("p50", "p90", "p99")}
            for r, b in zip(results, runs[base], strict=True)
        ]
        cells = [f"{statistics.median(a[p] for a in added):.3f}" for p in ("p50", "p90", "p99")]
        cpu = statistics.median(r.get("server_cpu_us_per_req", 0.0) for r in results)
        errors = sum(r["errors"] for r in results)
        print(f"| {name} | " + " | ".join(cells) + f" | {cpu:.0f} | {errors} |")


if __name__ == "__main__":
    main()
