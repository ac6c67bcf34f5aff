"""A scenario's one-page ``report.html``: the headline, automation and human work per round as a
plot and a table, then every other field of its summary."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from typing import Any

HEAD = ("scenario", "items_seen", "human_labels", "auto_accepted", "auto_accept_error", "final_metric")


def report_html(result: Mapping[str, Any]) -> str:
    """The page for ``result`` (a scenario's summary); every value escaped."""
    history = [h for h in result.get("history") or [] if isinstance(h, Mapping)]
    rest = {k: v for k, v in result.items() if k not in HEAD and k != "history"}
    title = html.escape(f"loopwright scenario {result.get('scenario')}")
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _headline(result)
    )
    per_round = ""
    if history:
        figure = _plot(history, result.get("epsilon"))
        per_round = (
            "<h2>Per round</h2>"
            f'<figure><img alt="Automation and human work per round" src="data:image/png;base64,{figure}">'
            "</figure>" + _table(history)
        )
    return (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title>"
        "<style>body{font:15px system-ui;margin:2em;max-width:70em}"
        "th,td{text-align:left;padding:.2em 1em .2em 0}"
        "table.rounds td,table.rounds th{border-bottom:1px solid #ddd}"
        "pre{background:#f5f5f5;padding:1em;overflow:auto}</style>"
        f"<h1>{title}</h1><table>{rows}</table>{per_round}<h2>Details</h2>"
        f"<pre>{html.escape(json.dumps(rest, indent=2))}</pre></html>\n"
    )


def _headline(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The figures an ML lead reads first, formatted."""
    items, human, auto = (int(result.get(k) or 0) for k in ("items_seen", "human_labels", "auto_accepted"))
    error = result.get("auto_accept_error")
    metric = result.get("final_metric") or {}
    eps = result.get("epsilon")
    rows = [
        ("scenario", str(result.get("scenario"))),
        ("items seen", f"{items:,}"),
        ("human labels", f"{human:,}" + (f" ({human / items:.2f} per item)" if items else "")),
        ("auto-accepted", f"{auto:,}" + (f" ({auto / items:.0%})" if items else "")),
        ("realised auto-accept error", "n/a (nothing auto-accepted)" if error is None else f"{error:.2%}"),
    ]
    if eps is not None:
        delta = result.get("delta")
        rows.append(("certified bound", f"ε = {eps:g}" + ("" if delta is None else f" at δ = {delta:g}")))
    rows.append((str(metric.get("name", "final metric")).replace("_", " "), _fmt(metric.get("value"))))
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _table(history: list[Mapping[str, Any]]) -> str:
    """The rounds' plain columns (numbers, flags, thresholds, reasons): records stay in Details."""
    keys = list(dict.fromkeys(k for h in history for k in h))
    columns = [
        k
        for k in keys
        if all(v is None or isinstance(v, int | float | str) for v in (h.get(k) for h in history))
        and any(h.get(k) is not None for h in history)
    ]
    head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c, h.get(c)))}</td>" for c in columns) + "</tr>"
        for h in history
    )
    return f'<table class="rounds"><tr>{head}</tr>{body}</table>'


def _cell(column: str, v: Any) -> str:
    return str(v + 1) if column == "round" and isinstance(v, int) else _fmt(v)


def _plot(history: list[Mapping[str, Any]], epsilon: float | None) -> str:
    """Auto-accepted share (bars), human labels per item and realised error per round, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rounds = [int(h.get("round", k)) + 1 for k, h in enumerate(history)]
    items = [max(int(h.get("items") or 0), 1) for h in history]
    auto = [int(h.get("auto_accepted") or 0) for h in history]
    wrong = [int(h.get("auto_accept_errors") or 0) for h in history]
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    ax.bar(
        rounds,
        [a / n for a, n in zip(auto, items, strict=True)],
        color="#4c9f70",
        label="auto-accepted share",
    )
    per_item = [int(h.get("human_labels") or 0) / n for h, n in zip(history, items, strict=True)]
    ax.plot(rounds, per_item, color="#34495e", marker="o", label="human labels per item")
    errors = [(r, w / a) for r, w, a in zip(rounds, wrong, auto, strict=True) if a]
    if errors:
        ax.plot(*zip(*errors, strict=True), "x", color="#c0392b", label="realised auto-accept error")
    if epsilon is not None:
        ax.axhline(epsilon, color="#c0392b", linestyle=":", label=f"certified ε = {epsilon:g}")
    ax.set(xlabel="round", title="Automation and human work per round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
