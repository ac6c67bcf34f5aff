"""The demo's HTML report: a few plots (inline PNG) and the model versions with their gate evidence."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(summary: dict[str, Any]) -> list[tuple[str, str]]:
    h = summary["history"]
    rounds = [r["round"] + 1 for r in h]
    figs = []

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    pts = [(r["human_labels_total"], r["champion_accuracy"]) for r in h if r["champion_accuracy"] is not None]
    if pts:
        ax.plot(*zip(*pts, strict=True), marker="o")
    if (drift := summary.get("drift")) and drift["starts_round"] > 0:
        at = h[drift["starts_round"] - 1]["human_labels_total"]
        ax.axvline(at, color="#c0392b", linestyle="--", label="images shift one pixel")
        ax.legend(loc="lower right")
    ax.set(
        xlabel="human labels (cumulative)",
        ylabel="held-out accuracy",
        title="Champion accuracy vs human labels",
    )
    ax.grid(alpha=0.3)
    figs.append(("Champion accuracy vs human labels", _png(fig)))

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.bar(rounds, [r["automation_rate"] for r in h], color="#4c9f70")
    ax.set(xlabel="round", ylabel="auto-accepted share", ylim=(0, 1), title="Automation rate per round")
    figs.append(("Automation rate per round", _png(fig)))

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    tiers = sorted({t for r in h for t in r["queues"]}, key=int)
    bottom = [0] * len(h)
    for t in tiers:
        sizes = [r["queues"].get(t, 0) for r in h]
        ax.bar(rounds, sizes, bottom=bottom, label=f"tier {t}")
        bottom = [b + s for b, s in zip(bottom, sizes, strict=True)]
    ax.set(xlabel="round", ylabel="open tasks after ingest", title="Review queue per tier")
    ax.legend()
    figs.append(("Review queue per tier", _png(fig)))
    return figs


def render_report(summary: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    headline = [
        ("rounds", summary["rounds"]),
        ("items seen", summary["items_seen"]),
        ("human labels", summary["human_labels"]),
        ("auto-accepted", summary["auto_accepted"]),
        ("auto-accept error", summary["auto_accept_error"]),
        ("final held-out accuracy", summary["champion_accuracy_by_round"][-1]),
        ("promotions", summary["promotions"]),
        ("seconds", summary["seconds"]),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{fmt(v)}</td></tr>" for k, v in headline)
    models = "".join(
        "<tr>"
        + "".join(
            f"<td>{fmt(v)}</td>"
            for v in (
                m["version"],
                m["status"],
                (m["dataset_version"] or "")[:12],
                m["metrics"].get("train_size"),
                (m["gate"] or {}).get("test"),
                (m["gate"] or {}).get("challenger_accuracy"),
                (m["gate"] or {}).get("champion_accuracy"),
                (m["gate"] or {}).get("p_value"),
                (m["gate"] or {}).get("reason"),
            )
        )
        + "</tr>"
        for m in summary["model_versions"]
    )
    plots = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}"><figcaption>{html.escape(t)}'
        "</figcaption></figure>"
        for t, b in _plots(summary)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loopwright demo report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}
th,td{{padding:.3rem .7rem;border-bottom:1px solid #ddd;text-align:left}}
figure{{display:inline-block;margin:.5rem}} figcaption{{text-align:center;color:#555}}
</style></head><body>
<h1>loopwright demo: digits</h1>
<p>Seed {summary["seed"]}. Accuracy is measured on {summary["held_out_size"]} held-out digits that the loop
never labels, trains or gates on. Auto-accept error is measured against the true labels, which the loop
never sees.</p>
<table>{rows}</table>
<p>Routing: {html.escape(summary["routing"])}.</p>
{plots}
<h2>Model versions and gate evidence</h2>
<table><tr><th>version</th><th>status</th><th>dataset</th><th>train size</th><th>gate test</th>
<th>challenger acc.</th><th>champion acc.</th><th>McNemar p</th><th>reason</th></tr>{models}</table>
</body></html>
"""
