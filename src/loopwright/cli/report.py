"""The demo's HTML report: a few plots (inline PNG) and the model versions with their gate evidence."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def _png(fig: Any) -> str:
    for ax in fig.axes:  # rounds are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(summary: dict[str, Any]) -> list[tuple[str, str]]:
    h = summary["history"]
    rounds = [r["round"] + 1 for r in h]
    drift = summary.get("drift") or {}
    shift = drift.get("starts_round")
    figs = []

    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    ax.plot(rounds, [r["champion_accuracy"] for r in h], marker="o", label="after the round's retrain")
    ax.plot(
        rounds,
        [r["accuracy_at_ingest"] for r in h],
        marker="x",
        linestyle=":",
        color="#c0392b",
        label="as the round arrived",
    )
    if shift:
        ax.axvline(shift + 0.5, color="#c0392b", linestyle="--", alpha=0.6)
        ax.annotate(
            "images shift\none pixel",
            (shift + 0.6, 0.05),
            xycoords=("data", "axes fraction"),
            color="#c0392b",
            fontsize=8,
        )
    ax.set(
        xlabel="round",
        ylabel="held-out accuracy",
        ylim=(0, 1.02),
        title="Champion accuracy: the drift and recovery",
    )
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    figs.append(("Champion accuracy per round (held-out originals)", _png(fig)))

    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    ax.bar(rounds, [r["automation_rate"] for r in h], color="#4c9f70", label="auto-accepted share at ingest")
    for x, r in zip(rounds, h, strict=True):
        if r.get("backlog_accepted"):  # the backlog a new certificate covered, accepted after the round
            ax.annotate(f"+{r['backlog_accepted']}", (x, 1.04), ha="center", fontsize=6, color="#2e7d4f")
    per_item = [(r["human_labels"] + r.get("gold_answers", 0)) / r["items"] for r in h]
    ax.plot(rounds, per_item, color="#34495e", marker="o", label="human labels per item")
    err = [r.get("auto_accept_errors", 0) / r["auto_accepted"] if r["auto_accepted"] else None for r in h]
    ax.plot(
        rounds,
        [e if e is not None else float("nan") for e in err],
        color="#c0392b",
        marker="x",
        linestyle="",
        label="realised auto-accept error",
    )
    if (eps := summary.get("epsilon")) is not None:
        ax.axhline(eps, color="#c0392b", linestyle=":", label=f"certified ε = {eps:g}")
    if shift:
        ax.axvline(shift + 0.5, color="#c0392b", linestyle="--", alpha=0.6)
    ax.set(
        xlabel="round", ylim=(0, max([1.02, *per_item]) + 0.1), title="Automation and human work per round"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7)
    ax.text(1.0, 1.01, "+n: backlog accepted", transform=ax.transAxes, ha="right", va="bottom", fontsize=6)
    fig.tight_layout()
    figs.append(("Automation, human labels and realised error per round", _png(fig)))

    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    tiers = sorted({t for r in h for t in r["queues"]}, key=int)
    bottom = [0] * len(h)
    for t in tiers:
        sizes = [r["queues"].get(t, 0) for r in h]
        ax.bar(rounds, sizes, bottom=bottom, label=f"tier {t}")
        bottom = [b + s for b, s in zip(bottom, sizes, strict=True)]
    ax.plot(rounds, [r.get("audited", 0) for r in h], color="k", marker=".", label="audited (adaptive rate)")
    ax.set(
        xlabel="round", ylabel="open tasks after ingest", title="Review queue per tier (audits: scored items)"
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(tiers) + 1, fontsize=7)
    fig.tight_layout()
    figs.append(("Review queue per tier", _png(fig)))
    return figs


def _pending(summary: dict[str, Any]) -> str:
    """Items left open when the review budget ran out: neither auto-accepted nor labelled."""
    share = summary.get("pending_share")
    if share is None:
        return "n/a"
    budget = summary.get("review_budget")
    tiers = ", ".join(f"tier {t}: {n}" for t, n in (budget or {}).items())
    per_round = f" · budget per round {tiers}" if tiers else ""
    return f"{round(share * summary['items_seen'])} ({share:.0%}){per_round}"


def _train_size(metrics: dict[str, Any]) -> str:
    """Training labels, and after a drift the old labels the bridge carried over as copies."""
    size = f"{metrics.get('train_size', '')}"
    if old := metrics.get("bridge_from"):
        size += f" + {metrics['bridge_synthetic'] // old} copies of {old}"
    return size


def _model_row(m: dict[str, Any], weak: int | None) -> tuple[Any, ...]:
    """A model version's cells in the report's table."""
    gate = m["gate"] or {}
    return (
        m["version"],
        m["status"] + (" (underfit on purpose)" if m["version"] == weak else ""),
        (m["dataset_version"] or "")[:12],
        _train_size(m["metrics"]),
        gate.get("test"),
        gate.get("challenger_accuracy"),
        gate.get("champion_accuracy"),
        None if gate.get("champion_accuracy") is None else f"{gate['wins']} / {gate['losses']}",
        gate.get("p_value"),
        _regressions(gate),
    )


def _regressions(gate: dict[str, Any]) -> str:
    """The slices a challenger significantly regressed on, by slicing; a gate that compares no
    slices (the first model against the majority class): its reason."""
    if not gate.get("slices"):
        return str(gate.get("reason", ""))
    by: dict[str, list[str]] = {}
    for s in gate["slices"]:
        if s["regressed"]:
            by.setdefault(s["slicing"], []).append(str(s["slice"]))
    return "; ".join(f"{k} {', '.join(v)}" for k, v in by.items()) or "none"


def render_report(summary: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    items = summary["items_seen"]
    eps = summary.get("epsilon")
    headline = [
        ("rounds", summary["rounds"]),
        ("items seen (synthetic)", f"{items} ({summary.get('synthetic_items', 0)})"),
        ("human labels (+ gold answers)", f"{summary['human_labels']} (+{summary['gold_answers']})"),
        ("human labels per item", summary.get("human_labels_per_item")),
        (
            "auto-accepted (of them from the backlog)",
            f"{summary['auto_accepted']} ({summary['auto_accepted'] / items:.0%}; "
            f"{summary.get('backlog_accepted', 0)})",
        ),
        ("pending (never reached by a human)", _pending(summary)),
        ("realised auto-accept error", summary["auto_accept_error"]),
        ("certified bound", "n/a" if eps is None else f"ε = {eps:g} at δ = {summary.get('delta'):g}"),
        ("final held-out accuracy", summary["champion_accuracy_by_round"][-1]),
        ("promotions", summary["promotions"]),
        ("seconds", summary["seconds"]),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{fmt(v)}</td></tr>" for k, v in headline)
    drift = summary.get("drift") or {}
    false_alarms = drift.get("false_alarm_rounds") or []
    retracted = set(drift.get("retracted_rounds") or []) & set(false_alarms)
    story = (
        f"<p>Drift: the images shift one pixel from round {fmt((drift.get('starts_round') or 0) + 1)}; "
        f"detected in round {fmt(None if (d := drift.get('detected_round')) is None else d + 1)} "
        f"(false alarms before: {len(false_alarms)}, retracted by the next batch: {len(retracted)}). "
        "Accuracy "
        f"{fmt(drift.get('accuracy_before'))} before, {fmt(drift.get('accuracy_at_shift'))} as the shift "
        f"arrived, {fmt(drift.get('accuracy_after'))} at the end; back within 2 points after "
        f"{fmt(drift.get('labels_to_recover'))} human labels"
        + (
            f", the retrains carrying each old label over as {k} one-pixel-shifted copies"
            if (k := summary.get("drift_bridge_copies"))
            else ""
        )
        + ".</p>"
        if drift
        else ""
    )
    paused = summary.get("paused_annotators") or {}
    quality = (
        f"<p>Gold checks: {summary['gold_items']} gold digits, {summary['gold_answers']} gold answers. "
        + (
            "Paused: " + "; ".join(f"<b>{html.escape(k)}</b> ({html.escape(v)})" for k, v in paused.items())
            if paused
            else "No annotator was paused."
        )
        + "</p>"
    )
    weak = (summary.get("underfit_challenger") or {}).get("version")
    models = "".join(
        "<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in _model_row(m, weak)) + "</tr>"
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
.models{{font-size:.9rem}} .models td:nth-child(4),.models td:nth-child(8){{white-space:nowrap}}
figure{{display:inline-block;margin:.5rem}} figcaption{{text-align:center;color:#555}}
</style></head><body>
<h1>loopwright demo: digits</h1>
<p>Seed {summary["seed"]}. Accuracy is measured on {summary["held_out_size"]} held-out digits that the loop
never labels, trains or gates on. Auto-accept error is measured against the true labels, which the loop
never sees. Synthetic items are seeded augmentations of pool digits (recorded in their metadata), never of
the held-out ones. Human capacity is finite: each round the tiers label at most their budget, in the review
queue's order; what they do not reach stays pending, neither auto-accepted nor labelled. The guarantee covers
auto-accepted items only.</p>
<table>{rows}</table>
{story}{quality}
<p>Routing: {html.escape(summary["routing"])}.</p>
{plots}
<h2>Model versions and gate evidence</h2>
<p>Each challenger is gated on the frozen evaluation split against the champion of its day; after the
drift, training counts the new world's labels plus one-pixel-shifted copies of the old world's. Wins
and losses count the evaluation items only one of the two models gets right.
The last version comes from a trainer regularised so hard it barely learns (logistic regression,
C = 1e-4), to show the gate rejecting it.</p>
<table class="models"><tr><th>version</th><th>status</th><th>dataset</th><th>train labels</th>
<th>gate test</th><th>challenger acc.</th><th>champion acc.</th><th>wins / losses</th><th>McNemar p</th>
<th>significant regression on</th></tr>{models}</table>
</body></html>
"""
