"""A self-contained HTML evaluation report (PNG charts embedded as base64).

Draws from the JSON-serialisable dict of :meth:`churn_kfp.learn.evaluation.Evaluation.to_dict`, so a
component can render it from the evaluation artifact alone. Charts are drawn with
matplotlib's object-oriented API on an Agg canvas created inside :func:`render_report`: the
process-wide pyplot backend is neither selected nor changed.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

REPORT_FILE = "report.html"

_METRIC_COLUMNS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("accuracy", "Accuracy"),
    ("lift_top_decile", "Lift@10%"),
    ("capture_top_decile", "Capture@10%"),
    ("base_rate", "Base rate"),
    ("threshold", "Threshold"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
tr.champion td{background:#eef7ee;font-weight:600}tr.baseline td{color:#555;font-style:italic}
.warn{background:#fff4e5;border:1px solid #f0a030;padding:.6rem 1rem;border-radius:4px}
.note{color:#555;font-size:.9rem}pre{background:#f7f7f7;padding:.8rem;white-space:pre-wrap}
.charts img{max-width:520px;width:48%;margin:.3rem;border:1px solid #eee}
"""


def _new_figure(width: float = 6.0, height: float = 4.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _label(name: str, metrics: dict[str, Any] | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return f"{name} ({'n/a' if value is None else f'{value:.3f}'})"


def _test_metrics(evaluation: dict[str, Any], name: str) -> dict[str, Any]:
    if name in evaluation.get("candidates", {}):
        return evaluation["candidates"][name].get("test", {})
    key = name.removeprefix("baseline_")
    return evaluation.get("baselines", {}).get(key, {}).get("test", {})


def _plot_roc(evaluation: dict[str, Any], path: Path) -> Path:
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    champion = evaluation.get("champion")
    for name, curve in evaluation.get("curves", {}).items():
        roc = curve.get("roc", {})
        if not roc.get("fpr"):
            continue
        is_baseline = name not in evaluation.get("candidates", {})
        ax.plot(
            roc["fpr"],
            roc["tpr"],
            label=_label(name, _test_metrics(evaluation, name), "roc_auc"),
            linewidth=2.5 if name == champion else 1.3,
            linestyle="--" if is_baseline else "-",
        )
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC on test")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def _plot_pr(evaluation: dict[str, Any], path: Path) -> Path:
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    champion = evaluation.get("champion")
    for name, curve in evaluation.get("curves", {}).items():
        pr = curve.get("pr", {})
        if not pr.get("recall"):
            continue
        is_baseline = name not in evaluation.get("candidates", {})
        ax.plot(
            pr["recall"],
            pr["precision"],
            label=_label(name, _test_metrics(evaluation, name), "pr_auc"),
            linewidth=2.5 if name == champion else 1.3,
            linestyle="--" if is_baseline else "-",
        )
    base_rate = evaluation.get("data", {}).get("base_rate", {}).get("test")
    if base_rate is not None:
        ax.axhline(base_rate, color="grey", linewidth=0.8, linestyle=":", label="base rate")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall on test", ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def _plot_confusion(evaluation: dict[str, Any], path: Path) -> Path:
    matrix = evaluation.get("confusion_matrix") or [[0, 0], [0, 0]]
    fig = _new_figure(4.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{matrix[i][j]:,}",
                ha="center",
                va="center",
                color="white" if matrix[i][j] > peak / 2 else "black",
                fontsize=13,
            )
    ax.set_xticks([0, 1], labels=["stays", "churns"])
    ax.set_yticks([0, 1], labels=["stays", "churns"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"{evaluation.get('champion')} on test")
    return _save(fig, path)


def _plot_importance(evaluation: dict[str, Any], path: Path, top: int = 15) -> Path:
    importance = evaluation.get("feature_importance", {})
    model_rows = importance.get("model", [])[:top]
    perm_rows = importance.get("permutation", [])[:top]
    fig = _new_figure(11.0, max(3.5, 0.32 * max(len(model_rows), len(perm_rows), 1) + 1.2))
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2)
    if model_rows:
        left.barh(
            [r["feature"] for r in model_rows][::-1], [r["importance"] for r in model_rows][::-1]
        )
    left.set(title=f"Model importance ({importance.get('model_kind', 'n/a')})")
    if perm_rows:
        right.barh(
            [r["feature"] for r in perm_rows][::-1],
            [r["mean"] for r in perm_rows][::-1],
            xerr=[r["std"] for r in perm_rows][::-1],
            color="#d08030",
        )
    right.set(title="Permutation importance (drop in ROC AUC)")
    for ax in (left, right):
        ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


def _plot_calibration(evaluation: dict[str, Any], path: Path) -> Path:
    calibration = evaluation.get("calibration", {})
    fig = _new_figure(4.8, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    if calibration.get("mean_predicted"):
        ax.plot(calibration["mean_predicted"], calibration["fraction_positive"], marker="o")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel="Observed churn rate",
        title=f"Calibration of {evaluation.get('champion')} (test, deciles)",
    )
    return _save(fig, path)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _metrics_table(evaluation: dict[str, Any]) -> str:
    header = "".join(f"<th>{label}</th>" for _, label in _METRIC_COLUMNS)
    rows = [
        f"<tr><th>Model</th><th>Kind</th><th>Validation ROC AUC</th>{header}</tr>",
    ]
    champion = evaluation.get("champion")
    for name, result in evaluation.get("candidates", {}).items():
        test = result.get("test", {})
        css = ' class="champion"' if name == champion else ""
        kind = "champion" if name == champion else "candidate"
        cells = "".join(f"<td>{_fmt(test.get(key))}</td>" for key, _ in _METRIC_COLUMNS)
        rows.append(
            f"<tr{css}><td>{html.escape(name)}</td><td>{kind}</td>"
            f"<td>{_fmt(result.get('validation', {}).get('roc_auc'))}</td>{cells}</tr>"
        )
    for name, result in evaluation.get("baselines", {}).items():
        test = result.get("test", {})
        reused = name in evaluation.get("candidates", {})
        kind = "baseline (= candidate)" if reused else "baseline"
        cells = "".join(f"<td>{_fmt(test.get(key))}</td>" for key, _ in _METRIC_COLUMNS)
        rows.append(
            f'<tr class="baseline"><td>{html.escape(name)}</td><td>{kind}</td>'
            f"<td>{_fmt(result.get('validation', {}).get('roc_auc'))}</td>{cells}</tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _candidates_detail(evaluation: dict[str, Any]) -> str:
    rows = [
        "<tr><th>Model</th><th>Parameters</th><th>Params tried</th><th>Fit seconds</th>"
        "<th>Refit on</th><th>Train ROC AUC</th><th>Train-test gap</th></tr>"
    ]
    for name, result in evaluation.get("candidates", {}).items():
        params = html.escape(json.dumps(result.get("params", {}), sort_keys=True))
        rows.append(
            f"<tr><td>{html.escape(name)}</td>"
            f"<td style='text-align:left'><code>{params}</code></td>"
            f"<td>{len(result.get('search_results', []))}</td>"
            f"<td>{_fmt(result.get('fit_seconds'))}</td>"
            f"<td>{_fmt(result.get('refit_on'))}</td>"
            f"<td>{_fmt(result.get('train', {}).get('roc_auc'))}</td>"
            f"<td>{_fmt(result.get('train_test_gap'))}</td></tr>"
        )
    baselines = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(str(b.get('description', '')))}</li>"
        for name, b in evaluation.get("baselines", {}).items()
    )
    return "<table>" + "".join(rows) + f"</table><ul class='note'>{baselines}</ul>"


def _data_table(evaluation: dict[str, Any]) -> str:
    data = evaluation.get("data", {})
    if not data.get("rows"):
        return ""
    rows = [
        "<tr><th>Split</th><th>Rows</th><th>Churners</th><th>Base rate</th><th>Cutoffs</th></tr>"
    ]
    for split, n in data["rows"].items():
        cutoffs = ", ".join(data.get("cutoffs", {}).get(split, []))
        rows.append(
            f"<tr><td>{html.escape(split)}</td><td>{_fmt(n)}</td>"
            f"<td>{_fmt(data.get('positives', {}).get(split))}</td>"
            f"<td>{_fmt(data.get('base_rate', {}).get(split))}</td>"
            f"<td style='text-align:left'>{html.escape(cutoffs)}</td></tr>"
        )
    features = data.get("features", {})
    note = (
        f"<p class='note'>{len(features.get('numeric', []))} numeric and "
        f"{len(features.get('categorical', []))} categorical input columns.</p>"
    )
    return "<table>" + "".join(rows) + "</table>" + note


def _extra_table(extra: dict[str, Any] | None) -> str:
    if not extra:
        return ""
    rows = []
    for key, value in extra.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
        rows.append(
            f"<tr><td>{html.escape(str(key))}</td>"
            f"<td style='text-align:left'><code>{html.escape(shown)}</code></td></tr>"
        )
    return "<h2>Run context</h2><table>" + "".join(rows) + "</table>"


def _img(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


def render_report(
    evaluation_dict: dict[str, Any],
    out_dir: str | Path,
    title: str = "Churn model evaluation",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes ``report.html`` and its PNG charts into ``out_dir``.

    Charts: ``roc.png`` and ``pr.png`` (every candidate and baseline on test),
    ``confusion.png`` and ``calibration.png`` (champion on test), ``feature_importance.png``
    (model and permutation importance). The HTML embeds them, so it can be opened or served on
    its own.

    Args:
        evaluation_dict: :meth:`churn_kfp.learn.evaluation.Evaluation.to_dict` output.
        out_dir: Output folder (created).
        title: Page title.
        extra: Run context shown as a key/value table (cutoffs, data range, run id, ...).

    Returns:
        Path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev = evaluation_dict
    charts = [
        (_plot_roc(ev, out / "roc.png"), "ROC curves"),
        (_plot_pr(ev, out / "pr.png"), "Precision-recall curves"),
        (_plot_confusion(ev, out / "confusion.png"), "Confusion matrix"),
        (_plot_calibration(ev, out / "calibration.png"), "Calibration"),
        (_plot_importance(ev, out / "feature_importance.png"), "Feature importance"),
    ]
    champion = str(ev.get("champion", "n/a"))
    champion_test = ev.get("candidates", {}).get(champion, {}).get("test", {})
    warning = ""
    if ev.get("leakage_warning"):
        warning += (
            f"<p class='warn'><b>Possible leakage.</b> {html.escape(ev['leakage_warning'])}</p>"
        )
    for problem in ev.get("protocol_warnings", []) or []:
        warning += f"<p class='warn'><b>Protocol.</b> {html.escape(problem)}</p>"
    summary = (
        f"<p><b>Chosen model: {html.escape(champion)}</b> — "
        f"{html.escape(str(ev.get('champion_reason', '')))}</p>"
        f"<p>On test: ROC AUC {_fmt(champion_test.get('roc_auc'))}, PR AUC "
        f"{_fmt(champion_test.get('pr_auc'))}, F1 {_fmt(champion_test.get('f1'))} at threshold "
        f"{_fmt(champion_test.get('threshold'))}, lift in the top decile "
        f"{_fmt(champion_test.get('lift_top_decile'))}. Train-test ROC AUC gap "
        f"{_fmt(ev.get('train_test_gap'))}.</p>"
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        warning,
        summary,
        "<h2>Candidates and baselines (test split)</h2>",
        _metrics_table(ev),
        "<p class='note'>Validation ROC AUC chose the champion; every other column is measured on "
        "the test split at the validation-tuned threshold.</p>",
        _candidates_detail(ev),
        "<h2>Charts</h2><div class='charts'>",
        "".join(_img(path, alt) for path, alt in charts),
        "</div>",
        "<p class='note'>Curves are on the test split; dashed lines are baselines. Candidates are "
        "trained with balanced class weights, so their scores rank customers but are not "
        "calibrated churn probabilities (see the calibration chart); decisions use the "
        "validation-tuned threshold.</p>",
        "<h2>Data</h2>",
        _data_table(ev),
        _extra_table(extra),
        "<h2>Evaluation protocol</h2>",
        f"<pre>{html.escape(str(ev.get('protocol', '')))}</pre>",
    ]
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
