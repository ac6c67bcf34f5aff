"""``loopwright drift REFERENCE.csv CURRENT.csv``: data drift between two CSV tables (stdlib csv)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from loopwright.errors import Invalid

if TYPE_CHECKING:
    import numpy as np

    from loopwright.drift import DataDriftReport, FeatureDrift

out = Console()
MISSING = {"", "na", "nan", "null", "none", "n/a", "-"}
MAX_PLOTS = 60


class Correction(StrEnum):
    bh = "bh"
    holm = "holm"
    none = "none"


@dataclass
class Table2:
    """A CSV file as header + string columns."""

    path: Path
    header: list[str]
    columns: list[list[str]]

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def read_table(path: Path) -> Table2:
    """Every column of a CSV file as strings; blank lines skipped, short rows padded with missing."""
    if not path.exists():
        raise Invalid(f"{path}: no such file")
    if not path.is_file():
        raise Invalid(f"{path}: not a file")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise Invalid(f"{path}: the file is empty: give a header row and data rows")
        header = [h.strip() for h in header]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise Invalid(f"{path}: duplicate column name(s) {', '.join(dup)}; rename them")
        columns: list[list[str]] = [[] for _ in header]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            for j, column in enumerate(columns):
                column.append(row[j].strip() if j < len(row) else "")
    if not columns[0]:
        raise Invalid(f"{path}: no data rows under the header")
    return Table2(path, header, columns)


def _as_float(values: list[str]) -> np.ndarray | None:
    import numpy as np  # NumPy: only when the command runs

    out_ = np.empty(len(values))
    for i, v in enumerate(values):
        if v.lower() in MISSING:
            out_[i] = np.nan
            continue
        try:
            out_[i] = float(v)
        except ValueError:
            return None
    return out_


def encode(
    ref: Table2, cur: Table2, categorical: set[str]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str], set[str], dict[str, list[str]]]:
    """Numeric matrices for both tables; text columns (or ``categorical``) become shared codes."""
    import numpy as np  # NumPy: only when the command runs

    cats: set[str] = set()
    labels: dict[str, list[str]] = {}
    shared = set(ref.header) & set(cur.header)
    ref_cols: dict[str, np.ndarray] = {}
    cur_cols: dict[str, np.ndarray] = {}
    for name in ref.header + [h for h in cur.header if h not in ref.header]:
        r = ref.columns[ref.header.index(name)] if name in ref.header else None
        c = cur.columns[cur.header.index(name)] if name in cur.header else None
        numbers = [None if v is None or name in categorical else _as_float(v) for v in (r, c)]
        if name in categorical or (name in shared and (numbers[0] is None or numbers[1] is None)):
            values = sorted({v for col in (r, c) if col is not None for v in col if v.lower() not in MISSING})
            code = {v: float(i) for i, v in enumerate(values)}
            numbers = [
                None if col is None else np.array([code.get(v, np.nan) for v in col]) for col in (r, c)
            ]
            cats.add(name)
            labels[name] = values
        for col, store, raw in ((numbers[0], ref_cols, r), (numbers[1], cur_cols, c)):
            if raw is not None:
                store[name] = col if col is not None else np.full(len(raw), np.nan)
    ref_names, cur_names = list(ref_cols), list(cur_cols)
    return (
        np.column_stack([ref_cols[n] for n in ref_names]),
        np.column_stack([cur_cols[n] for n in cur_names]),
        ref_names,
        cur_names,
        cats,
        labels,
    )


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def drift_command(
    reference: Annotated[Path, typer.Argument(help="Reference window: a CSV table with a header row.")],
    current: Annotated[Path, typer.Argument(help="Current window: a CSV table; columns matched by name.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report with per-feature plots.")
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option("--categorical", help="Treat this column as categorical (repeat, or comma-separate)."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level after correction.")] = 0.05,
    correction: Annotated[
        Correction, typer.Option(help="bh (Benjamini-Hochberg), holm, or none.")
    ] = Correction.bh,
    classifier: Annotated[
        bool, typer.Option("--classifier/--no-classifier", help="Fit the domain classifier (multivariate).")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for the domain classifier's subsample and folds.")] = 0,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit with code 1 when drift is found (for CI).")
    ] = False,
) -> None:
    """Data drift between two CSV tables: KS / chi-squared per column, PSI, Wasserstein, Jensen-Shannon,
    Benjamini-Hochberg correction and a domain classifier's AUC."""
    forced = {c.strip() for item in categorical or [] for c in item.split(",") if c.strip()}
    ref_t, cur_t = read_table(reference), read_table(current)
    unknown = sorted(forced - set(ref_t.header) - set(cur_t.header))
    if unknown:
        raise Invalid(f"--categorical {', '.join(unknown)}: no such column in either file")
    if not set(ref_t.header) & set(cur_t.header):
        raise Invalid(
            f"{reference} and {current} share no column: "
            f"{', '.join(ref_t.header)} vs {', '.join(cur_t.header)}"
        )
    from loopwright.drift import data_drift

    ref, cur, ref_names, cur_names, cats, labels = encode(ref_t, cur_t, forced)
    report = data_drift(
        ref, cur, ref_names, current_columns=cur_names, categorical=sorted(cats), alpha=alpha,
        correction=correction.value, domain_classifier=classifier, seed=seed,
    )  # fmt: skip
    if html_out is not None:
        html_out.write_text(render_html(report, ref, cur, ref_names, cur_names, labels, reference, current))
    if as_json:
        body = report.to_dict() | {"reference": str(reference), "current": str(current)}
        print(json.dumps(_clean(body), allow_nan=False))
    else:
        _print(report, reference, current, html_out)
    if fail_on_drift and report.drift:
        raise typer.Exit(1)


def _f(x: float | None, digits: int = 3) -> str:
    if x is None:
        return ""
    return f"{x:.2e}" if 0 < abs(x) < 10**-digits else f"{x:.{digits}f}"


def _print(report: DataDriftReport, reference: Path, current: Path, html_out: Path | None) -> None:
    d = report.to_dict()
    verdict = "[bold red]DRIFT[/]" if report.drift else "[bold green]no drift[/]"
    auc = report.domain_classifier_auc
    out.print(
        f"{verdict}: {d['n_drifted']} of {d['n_tested']} tested features drift "
        f"({report.correction}, alpha {report.alpha}); domain classifier AUC "
        f"{'n/a (' + str(report.domain_classifier_skipped) + ')' if auc is None else f'{auc:.3f}'}"
        f" · {report.n_reference} vs {report.n_current} rows"
    )
    table = Table(
        "feature", "test", "statistic", "p (adj.)", "drift", "PSI", "W/sd or JS", "skipped (--json: why)",
        title=f"{reference.name} → {current.name}",
    )  # fmt: skip
    for f in sorted(report.features, key=_order):
        dist = f.wasserstein_normed if f.kind == "numeric" else f.jensen_shannon
        table.add_row(
            f.name, f.test, _f(f.statistic), _f(f.p_adjusted), "[red]yes[/]" if f.drift else "no",
            _f(f.psi), _f(dist), (f.skipped or "").split(":")[0],
        )  # fmt: skip
    out.print(table)
    for note in report.notes:
        out.print(f"note: {note}")
    if html_out is not None:
        out.print(f"wrote {html_out}")


def _order(f: FeatureDrift) -> tuple[int, float]:
    return (
        0 if f.drift else 1 if f.skipped is None else 2,
        f.p_adjusted if f.p_adjusted is not None else 2.0,
    )


def _plot(f: FeatureDrift, a: np.ndarray, b: np.ndarray, labels: list[str] | None) -> str:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    if f.kind == "categorical":
        values = np.union1d(a, b)
        names = [labels[int(v)] if labels else f"{v:g}" for v in values]
        x = np.arange(values.size)
        ax.bar(x - 0.2, [np.mean(a == v) for v in values], 0.4, label="reference")
        ax.bar(x + 0.2, [np.mean(b == v) for v in values], 0.4, label="current")
        ax.set_xticks(
            x, names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center"
        )
        ax.set_ylabel("share")
    else:
        edges = np.histogram_bin_edges(np.concatenate([a, b]), bins=40)
        ax.hist(a, bins=edges.tolist(), density=True, alpha=0.5, label="reference")
        ax.hist(b, bins=edges.tolist(), density=True, alpha=0.5, label="current")
        ax.set_ylabel("density")
    ax.set_title(f"{f.name}: {'drift' if f.drift else 'no drift'}", color="#b22" if f.drift else "#222")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(
    report: DataDriftReport,
    ref: np.ndarray,
    cur: np.ndarray,
    ref_names: list[str],
    cur_names: list[str],
    labels: dict[str, list[str]],
    reference: Path,
    current: Path,
) -> str:
    """A self-contained page: the verdict, the per-feature table and a plot per tested feature."""
    esc = html.escape
    auc = report.domain_classifier_auc
    rows = "".join(
        "<tr" + (' class="drift"' if f.drift else "") + ">"
        + "".join(f"<td>{esc(str(v))}</td>" for v in (
            f.name, f.test, _f(f.statistic), _f(f.p_value), _f(f.p_adjusted), "yes" if f.drift else "no",
            _f(f.psi), _f(f.wasserstein), _f(f.wasserstein_normed), _f(f.jensen_shannon), f.skipped or "",
        ))
        + "</tr>"
        for f in sorted(report.features, key=_order)
    )  # fmt: skip
    tested = [f for f in sorted(report.features, key=_order) if f.skipped is None][:MAX_PLOTS]
    plots = "".join(
        f'<figure><img alt="{esc(f.name)}" src="data:image/png;base64,'
        f'{_plot(f, ref[:, ref_names.index(f.name)], cur[:, cur_names.index(f.name)], labels.get(f.name))}">'
        "</figure>"
        for f in tested
    )
    verdict = "Drift" if report.drift else "No drift"
    auc_text = f"{auc:.3f}" if auc is not None else f"n/a ({report.domain_classifier_skipped})"
    notes = "".join(f"<p>Note: {esc(n)}.</p>" for n in report.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loopwright drift report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:80rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}} tr.drift td{{color:#b22;font-weight:600}}
th,td{{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}}
figure{{display:inline-block;margin:.3rem}}
</style></head><body>
<h1>{verdict}: {esc(reference.name)} → {esc(current.name)}</h1>
<p>{len(report.drifted)} of {sum(f.skipped is None for f in report.features)} tested features drift
({esc(report.correction)} correction, alpha {report.alpha}); {report.n_reference} reference rows,
{report.n_current} current rows. Domain classifier AUC: {auc_text}
(drift at ≥ {report.auc_threshold}).</p>{notes}
<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p</th><th>p (adj.)</th><th>drift</th>
<th>PSI</th><th>Wasserstein</th><th>Wasserstein / sd</th><th>Jensen-Shannon</th><th>skipped</th></tr>
{rows}</table>
<h2>Distributions</h2>
{plots}
</body></html>
"""
