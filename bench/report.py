"""Turn a results dict into `results*.md` tables and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PCTS = ("p50", "p90", "p99", "max")


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    if a <= 0:
        return "≤0 (no measurable overhead)"
    return f"{a / b:.2f} (LiteLLM adds {b / a:.1f}x)"


def machine_md(m: dict[str, Any]) -> list[str]:
    v = ", ".join(f"{k} {val}" for k, val in m.get("versions", {}).items() if val)
    return [
        "## Machine",
        "",
        f"- {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}",
        f"- load average at start {tuple(round(x, 2) for x in m['loadavg_at_start'])}; other busy processes: "
        f"{', '.join(m['busy_processes_at_start']) or 'none'}",
        f"- pinning: {m['cpu_pinning']}; respgate {m.get('respgate_commit')}; LiteLLM {m.get('litellm')}",
        f"- {v}",
        f"- started {m['when']}; command `{m.get('command')}`",
        "",
    ]


def later_md(runs: list[dict[str, Any]]) -> list[str]:
    return [
        f"- sections {', '.join(r['sections'])} measured later: started {r['machine']['when']}, load average "
        f"{tuple(round(x, 2) for x in r['machine']['loadavg_at_start'])}, command `{r['machine'].get('command')}`"
        for r in runs
    ] + ([""] if runs else [])


def overhead_md(o: dict[str, Any]) -> list[str]:
    out = [
        "## Overhead at fixed load (non-streaming `POST /v1/responses`, 16 output tokens)",
        "",
        "Latency in ms from the moment the open-loop generator issues the request to the last byte. "
        "Added = via gateway - direct to the mock, per percentile (passthrough is compared with the mock's "
        "`/v1/responses`, the bridge with its `/v1/chat/completions`). `cpu/req` is the gateway process's "
        "CPU time per request.",
        "",
    ]
    if o.get("skipped"):
        out += [f"Skipped: {o['skipped']}", ""]
    for rate, per in o["rates"].items():
        out += [
            f"### {rate} requests/s",
            "",
            "| target | p50 | p90 | p99 | max | added p50 | added p99 | errors | cpu/req µs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        add = o["added_ms"][rate]
        for name, r in per.items():
            lat = r["latency_ms"]
            a = add.get(name, {})
            out.append(
                f"| {name} | "
                + " | ".join(_f(lat.get(p)) for p in PCTS)
                + f" | {_f(a.get('p50'))} | {_f(a.get('p99'))} | {r['errors']}/{r['scheduled']}"
                f" | {_f(r.get('server_cpu_us_per_req'), 0)} |"
            )
        out.append("")
    out += [
        "### respgate vs LiteLLM (added latency, ms; ratio = respgate / LiteLLM)",
        "",
        "| rate | mode | respgate p50 | LiteLLM p50 | ratio p50 | respgate p99 | LiteLLM p99 | ratio p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rate, add in o["added_ms"].items():
        for mode in ("passthrough", "bridge"):
            rg, ll = add.get(f"respgate-{mode}"), add.get(f"litellm-{mode}")
            if rg is None:
                continue
            out.append(
                f"| {rate} | {mode} | {_f(rg['p50'])} | {_f(ll and ll['p50'])} | "
                f"{_ratio(rg['p50'], ll and ll['p50'])} | {_f(rg['p99'])} | {_f(ll and ll['p99'])} | "
                f"{_ratio(rg['p99'], ll and ll['p99'])} |"
            )
    mock_cpu = ", ".join(f"{k} phase {_f(v, 1)}" for k, v in (o.get("mock_cpu_us_per_req") or {}).items())
    out += ["", f"Mock upstream CPU per request: {mock_cpu} µs (requests of all targets of the phase).", ""]
    if o.get("not_run"):
        out += [
            "Not run (overloaded at a lower rate): " + "; ".join(f"{k}: {v}" for k, v in o["not_run"].items()),
            "",
        ]
    return out


def maxrate_md(m: dict[str, Any]) -> list[str]:
    out = [
        "## Maximum sustainable rate",
        "",
        f"Criterion: {m['criterion']}.",
        "",
        "| target | max sustainable req/s | steps (rate: error rate, p99 ms) |",
        "|---|---|---|",
    ]
    for name, t in m["targets"].items():
        steps = "; ".join(
            f"{s['rate']:.0f}: {100 * s['error_rate']:.1f}%, {_f(s['latency_ms'].get('p99'), 1)}"
            for s in t["steps"]
        )
        out.append(f"| {name} | {t['max_sustainable_rate']:.0f} | {steps} |")
    return [*out, ""]


def streaming_md(s: dict[str, Any]) -> list[str]:
    out = [
        f"## Streaming cost ({s['tokens']}-token SSE stream, {s['rate']:.0f} streams/s)",
        "",
        "TTFE = time to the first body byte (the first SSE event). Per-token = added total time (p50) / "
        "tokens; CPU/token = the gateway's CPU time per stream / tokens.",
        "",
        "| target | TTFE p50 | TTFE p99 | total p50 | total p99 | added TTFE p50 | added total p50 | "
        "per-token µs | CPU/token µs | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in s["results"].items():
        at, ttf = s["added_total_ms"].get(name, {}), s["added_ttfe_ms"].get(name, {})
        pt = s["per_token_us"].get(name, {})
        out.append(
            f"| {name} | {_f(r['ttfb_ms'].get('p50'))} | {_f(r['ttfb_ms'].get('p99'))} | "
            f"{_f(r['latency_ms'].get('p50'))} | {_f(r['latency_ms'].get('p99'))} | {_f(ttf.get('p50'))} | "
            f"{_f(at.get('p50'))} | {_f(pt.get('added_p50'), 1)} | {_f(pt.get('server_cpu'), 1)} | "
            f"{r['errors']}/{r['scheduled']} |"
        )
    return [*out, ""]


def state_md(s: dict[str, Any]) -> list[str]:
    out = [
        f"## State: `previous_response_id` chains ({s['rate']:.0f} requests/s, store on)",
        "",
        "| database | model | chain | p50 | p99 | max | added p50 | added p99 | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for db, per in s["databases"].items():
        for model, d in per.items():
            for name, r in d["runs"].items():
                a = d["added_ms"].get(name, {})
                lat = r["latency_ms"]
                out.append(
                    f"| {db} | {model} | {name} | {_f(lat.get('p50'))} | {_f(lat.get('p99'))} | "
                    f"{_f(lat.get('max'))} | {_f(a.get('p50'))} | {_f(a.get('p99'))} | "
                    f"{r['errors']}/{r['scheduled']} |"
                )
    return [*out, ""]


def local_md(loc: dict[str, Any]) -> list[str]:
    out = ["## Local model (llama-server, qwen2.5-coder-0.5b)", ""]
    if loc.get("skipped"):
        return [*out, f"Skipped: {loc['skipped']}", ""]
    out += [
        "| path | prompt tok/s | generation tok/s | TTFT ms | prompt tokens | generated tokens |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in loc["runs"].items():
        out.append(
            f"| {name} | {_f(r.get('prompt_tps'), 1)} | {_f(r.get('gen_tps'), 1)} | "
            f"{_f(r.get('ttft_ms'), 1)} | {r.get('prompt_tokens')} | {r.get('gen_tokens')} |"
        )
    for key in ("ratios", "seed"):
        if loc.get(key):
            out += ["", f"{key}: `{loc[key]}`"]
    return [*out, ""]


def render(results: dict[str, Any], md_path: Path, plot_dir: Path) -> None:
    lines = ["# respgate benchmark results", ""]
    if results.get("headline"):
        lines += ["## Headline", "", *[f"- {h}" for h in results["headline"]], ""]
    lines += machine_md(results["machine"])
    lines += later_md(results.get("later_runs", []))
    for key, fn in (
        ("overhead", overhead_md),
        ("max_rate", maxrate_md),
        ("streaming", streaming_md),
        ("state", state_md),
        ("local", local_md),
    ):
        if results.get(key):
            lines += fn(results[key])
    if results.get("profile"):
        lines += ["## Profile", "", results["profile"].get("summary_md", ""), ""]
    plots = plot(results, plot_dir)
    if plots:
        lines += ["## Plots", "", *[f"![{p.stem}]({p.relative_to(md_path.parent)})" for p in plots], ""]
    md_path.write_text("\n".join(lines))


def plot(results: dict[str, Any], plot_dir: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    plot_dir.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    o = results.get("overhead")
    if o and len(o["rates"]) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        names = list(next(iter(o["rates"].values())).keys())
        rates = [int(r) for r in o["rates"]]
        for ax, pct in zip(axes, ("p50", "p99"), strict=True):
            for name in names:
                pts = [
                    (r, o["rates"][str(r)][name]["latency_ms"].get(pct))
                    for r in rates
                    if name in o["rates"][str(r)]
                ]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
            ax.set(
                xlabel="requests/s (open loop)",
                ylabel=f"{pct} latency, ms",
                yscale="log",
                title=f"{pct} latency against load",
            )
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.tight_layout()
        made.append(plot_dir / "latency_vs_load.png")
        fig.savefig(made[-1], dpi=110)
        plt.close(fig)
    if o:
        with_samples = [
            (rate, per) for rate, per in o["rates"].items() if any(r.get("samples_ms") for r in per.values())
        ]
        if with_samples:
            rate, per = with_samples[0]
            fig, ax = plt.subplots(figsize=(8, 4.5))
            for name, r in per.items():
                xs = sorted(r.get("samples_ms") or [])
                if xs:
                    ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=name)
            ax.set(
                xscale="log",
                xlabel="latency, ms",
                ylabel="fraction of requests",
                title=f"latency distribution at {rate} requests/s",
            )
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            made.append(plot_dir / "latency_cdf.png")
            fig.savefig(made[-1], dpi=110)
            plt.close(fig)
    return made
