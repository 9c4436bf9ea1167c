"""`python -m bench all [--quick]`: run the suite, write bench/results/results[-quick].{json,md} and plots.

Sections: overhead, maxrate, stream, state, local, profile (or `all`). `--quick` runs a reduced set in
under a minute (respgate only, one rate, short runs) so that it can be repeated after every change.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import gateways, machine, procs, report, scenarios
from bench.procs import RESULTS, WORK

SECTIONS = ("overhead", "maxrate", "stream", "state", "local", "profile")


def _databases(quick: bool, want_postgres: bool) -> dict[str, str]:
    dbs = {"sqlite": gateways.sqlite_url(WORK / "bench.sqlite3")}
    if want_postgres and not quick:
        gateways.reset_postgres()
        url = gateways.postgres_url()
        if url:
            dbs["postgresql"] = url
        else:
            procs.log("PostgreSQL on 127.0.0.1:5432 is not reachable; state runs on SQLite only")
    return dbs


def headline(results: dict[str, Any]) -> list[str]:
    """The issue's targets, each with the number measured in this run."""
    out: list[str] = []
    o = results.get("overhead")
    if o:
        rate = "500" if "500" in o["added_ms"] else next(iter(o["added_ms"]))
        add = o["added_ms"][rate]
        for mode in ("passthrough", "bridge"):
            rg, ll = add.get(f"respgate-{mode}"), add.get(f"litellm-{mode}")
            if rg:
                text = (
                    f"{mode} at {rate} req/s: respgate adds p50 {rg['p50']:.3f} ms, p99 {rg['p99']:.3f} ms "
                    f"(target ≤ 1 / ≤ 3 ms)"
                )
                if ll:
                    text += (
                        f"; LiteLLM adds p50 {ll['p50']:.3f} ms, p99 {ll['p99']:.3f} ms → LiteLLM/respgate "
                        f"= {ll['p50'] / max(rg['p50'], 1e-3):.1f}x (p50), "
                        f"{ll['p99'] / max(rg['p99'], 1e-3):.1f}x (p99) (target ≥ 5x)"
                    )
                out.append(text)
    if o:
        for mode in ("passthrough", "bridge"):
            # Served = the max-rate criterion: < 1% errors and p99 under 1 s (past saturation an open-loop
            # run has no errors for a while, only latency growing without bound).
            ok = [
                r
                for r, per in o["rates"].items()
                if all(
                    per.get(f"{gw}-{mode}", {}).get("error_rate", 1.0) < 0.01
                    and per[f"{gw}-{mode}"]["latency_ms"].get("p99", 1e9) < 1000.0
                    for gw in ("respgate", "litellm")
                )
            ]
            if ok:
                rate = max(ok, key=float)
                rg, ll = o["added_ms"][rate][f"respgate-{mode}"], o["added_ms"][rate][f"litellm-{mode}"]
                out.append(
                    f"{mode}, highest rate both gateways serve (< 1% errors, p99 < 1 s; {rate} req/s): "
                    f"respgate adds p50 {rg['p50']:.3f} / p99 {rg['p99']:.3f} ms, LiteLLM "
                    f"{ll['p50']:.3f} / {ll['p99']:.3f} ms -> LiteLLM/respgate = "
                    f"{ll['p50'] / max(rg['p50'], 1e-3):.1f}x (p50), {ll['p99'] / max(rg['p99'], 1e-3):.1f}x (p99)"
                )
    m = results.get("max_rate")
    if m:
        out.append(
            "max sustainable rate: "
            + ", ".join(f"{k} {v['max_sustainable_rate']:.0f}/s" for k, v in m["targets"].items())
        )
    s = results.get("streaming")
    if s:
        for name, pt in s["per_token_us"].items():
            if name.startswith("respgate"):
                out.append(
                    f"{name} stream: {pt['added_p50']:.1f} µs added per token (p50 wall), "
                    f"{pt['server_cpu']:.1f} µs CPU per token (target ≤ 20 µs for the bridge)"
                )
    st = results.get("state")
    if st:
        for db, per in st["databases"].items():
            for model, d in per.items():
                worst = max((a["p99"] for a in d["added_ms"].values()), default=0.0)
                out.append(
                    f"previous_response_id on {db} ({model}): worst added p99 over chains "
                    f"{', '.join(k for k in d['added_ms'])} = {worst:.3f} ms (target ≤ 2 ms)"
                )
    loc = results.get("local")
    if loc and loc.get("ratios"):
        out.append(f"local model: {loc['ratios']}")
    return out


def save(results: dict[str, Any], stem: str) -> None:
    """Write the Markdown, the plots and the JSON; called after every section so a stopped run keeps
    what it measured."""
    results["headline"] = headline(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.render(results, RESULTS / f"{stem}.md", RESULTS / f"plots-{stem}")
    slim = json.loads(json.dumps(results, default=str))
    for per in slim.get("overhead", {}).get("rates", {}).values():
        for r in per.values():
            r.pop("samples_ms", None)  # plotted; too bulky for the JSON
    Path(RESULTS / f"{stem}.json").write_text(json.dumps(slim, indent=1))


def run(sections: list[str], *, quick: bool, want_litellm: bool, want_postgres: bool, stem: str) -> dict[str, Any]:
    db_path = WORK / "bench.sqlite3"
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": machine.describe(
            {
                "command": " ".join(["python -m bench", *sys.argv[1:]]),
                "litellm": gateways.litellm_version() if want_litellm else None,
            }
        ),
        "sections": sections,
    }
    why = gateways.respgate_available()
    if why:
        procs.log(f"respgate cannot run: {why}; only the direct (mock) baseline is measured")
    want_litellm = want_litellm and not quick
    if "overhead" in sections:
        # 50/s is added so that LiteLLM, which saturates below 100/s on one core, has a comparable point.
        rates = [500.0] if quick else [50.0, 100.0, 200.0, 500.0, 1000.0]
        results["overhead"] = scenarios.overhead(
            rates=rates,
            duration=2.0 if quick else 10.0,
            warmup=0.5 if quick else 2.0,
            want_litellm=want_litellm,
            db=gateways.sqlite_url(db_path),
            samples_at=500.0,
        )
    save(results, stem)
    if "maxrate" in sections and not quick and not why:
        ladder = [25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0, 2000.0, 2500.0, 3000.0]
        results["max_rate"] = scenarios.max_rate(
            ladder=ladder, duration=5.0, want_litellm=want_litellm, db=gateways.sqlite_url(db_path)
        )
    save(results, stem)
    if "stream" in sections:
        results["streaming"] = scenarios.streaming(
            # 5 streams/s keeps LiteLLM below saturation (it does not sustain 20 x 500-token streams/s).
            rate=5.0,
            duration=3.0 if quick else 12.0,
            warmup=0.5 if quick else 2.0,
            want_litellm=want_litellm,
            db=gateways.sqlite_url(db_path),
        )
    save(results, stem)
    if "state" in sections and not why:
        results["state"] = scenarios.state(
            chains=[1, 50] if quick else [1, 10, 50],
            rate=100.0,
            duration=2.0 if quick else 10.0,
            warmup=0.5 if quick else 2.0,
            databases=_databases(quick, want_postgres),
            models=["bench-cc"] if quick else ["bench-cc", "bench-resp"],
        )
    save(results, stem)
    if "local" in sections and not quick:
        from bench import local_model

        results["local"] = local_model.run(repeats=3)
    save(results, stem)
    if "profile" in sections and not quick and not why:
        from bench import profile

        results["profile"] = profile.run(db=gateways.sqlite_url(db_path))
    save(results, stem)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("section", nargs="+", choices=("all", *SECTIONS))
    parser.add_argument("--quick", action="store_true", help="under a minute: respgate only, short runs")
    parser.add_argument("--no-litellm", action="store_true", help="do not install or run LiteLLM")
    parser.add_argument("--no-postgres", action="store_true", help="state on SQLite only")
    parser.add_argument("--out", default=None, help="result file stem (default results or results-quick)")
    parser.add_argument("--merge", action="store_true", help="add these sections to the existing result file")
    args = parser.parse_args(argv)
    sections = list(SECTIONS) if "all" in args.section else args.section
    started = time.monotonic()
    stem = args.out or ("results-quick" if args.quick else "results")
    results = run(
        sections,
        quick=args.quick,
        want_litellm=not args.no_litellm,
        want_postgres=not args.no_postgres,
        stem=f"{stem}-partial" if args.merge else stem,
    )
    previous = RESULTS / f"{stem}.json"
    if args.merge and previous.exists():
        # Sections measured later are added next to the earlier ones, each run's machine line kept.
        base = json.loads(previous.read_text())
        base.setdefault("later_runs", []).append({"sections": sections, "machine": results["machine"]})
        base.update(
            {
                k: v
                for k, v in results.items()
                if k in ("overhead", "max_rate", "streaming", "state", "local", "profile")
            }
        )
        results = base
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    save(results, stem)
    procs.log(f"done in {results['elapsed_s']} s: {RESULTS / f'{stem}.md'}")
    for line in results["headline"]:
        print(line)


if __name__ == "__main__":
    main()
