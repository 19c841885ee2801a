"""A shareable export: one self-contained HTML file that opens offline in any browser.

``html_document`` lays out ``Section``s (paragraphs, tables, Plotly figures) under a header that
says when, from which runs and with which library versions the file was made, with a table of
contents. All text is escaped; plotly.js is inlined once, with the first figure, so the file
needs no network. ``comparison_sections`` builds the comparison of stored runs from
``core.metrics`` and the ``core.figures`` builders; ``export_html`` is the dashboard's export:
that comparison, then calibration (``core.calibration``) and the seeds (``core.seeds``).
No Streamlit, no TensorFlow.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core import calibration, power, robustness, seeds, selective
from core import comparison as comparison_tables
from core.artifacts import Run
from core.data import CLASS_NAMES
from core.figures import (
    accuracy_coverage_figure,
    confusion_figure,
    f1_bars_figure,
    reliability_figure,
    robustness_difference_figure,
    robustness_figure,
    robustness_severity_figure,
    roc_figure,
    seed_metric_figure,
    training_curves_figure,
)
from core.metrics import Comparison, Evaluation, compare, evaluate
from core.models import DEFAULT_PAIR, display_name, model_label
from core.published import BEST_PUBLISHED_NOTE, SHIRT, reference_lines
from core.roc import auc_table

FIGURE_CONFIG = {"displaylogo": False, "responsive": True}
VERSION_PACKAGES = ("numpy", "pandas", "scikit-learn", "scipy", "plotly")
RUNS_TITLE = "Runs"
METRICS_TITLE = "Test metrics"
STATISTICS_TITLE = "Is the difference real?"
CONFUSION_TITLE = "Confusion matrices"
ROC_TITLE = "ROC curve for Shirt"
F1_TITLE = "Per-class precision, recall and F1"
TRAINING_TITLE = "Training curves"
CALIBRATION_TITLE = "Calibration"
ABSTAIN_TITLE = "When should a model abstain?"
ROBUSTNESS_TITLE = "Robustness: which model breaks first?"
SEEDS_TITLE = "Seeds"
EXPORT_TITLE = "Fashion-MNIST: baseline vs residual CNN"

_STYLE = """
body { font-family: "Source Sans Pro", "Segoe UI", Helvetica, Arial, sans-serif;
       color: #262730; max-width: 1100px; margin: 0 auto; padding: 1.5rem; line-height: 1.45; }
header { border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
dl.meta ul { margin: 0; padding-left: 1.1rem; }
nav ol { padding-left: 1.4rem; }
section { margin: 2rem 0; }
table.dataframe { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
table.dataframe th, table.dataframe td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; }
table.dataframe td { text-align: right; font-variant-numeric: tabular-nums; }
table.dataframe thead th { background: #f4f6fa; }
.table-wrap { overflow-x: auto; }
.figure { margin: 1rem 0; }
""".strip()


@dataclass
class Section:
    """One part of an HTML document: its paragraphs, then its tables, then its figures, in order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    figures: list[go.Figure] = field(default_factory=list)


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _format_number(value: float) -> str:
    # Four decimals line up in a column; tiny values (p-values) keep their significant digits.
    if value == 0 or 1e-4 <= abs(value) < 1e6:
        return f"{value:.4f}"
    return f"{value:.3g}"


def _table_html(table: pd.DataFrame) -> str:
    # escape=True (pandas' default, spelled out): cells, column and index labels are text.
    body = table.to_html(escape=True, border=0, float_format=_format_number, na_rep="n/a")
    return f'<div class="table-wrap">{body}</div>'


def _meta_value(value: object) -> str:
    if isinstance(value, Mapping):
        items = "".join(f"<li>{_text(k)}: {_text(v)}</li>" for k, v in value.items())
        return f"<ul>{items}</ul>"
    if isinstance(value, list | tuple):
        return "<ul>" + "".join(f"<li>{_text(v)}</li>" for v in value) + "</ul>"
    return _text(value)


def _header(title: str, meta: Mapping) -> str:
    generated = meta.get("generated") or datetime.now(UTC)
    if isinstance(generated, datetime):
        generated = generated.isoformat(timespec="seconds")
    rows = [("Generated", generated)]
    for key in ("runs", "versions"):
        if key in meta:
            rows.append((key.capitalize(), meta[key]))
    rows += [
        (key, value) for key, value in meta.items() if key not in ("generated", "runs", "versions")
    ]
    items = "".join(f"<dt>{_text(k)}</dt><dd>{_meta_value(v)}</dd>" for k, v in rows)
    return f'<header><h1>{_text(title)}</h1><dl class="meta">{items}</dl></header>'


def html_document(title: str, sections: list[Section], meta: Mapping | None = None) -> str:
    """The whole export as one HTML5 document (str), readable offline.

    ``meta``: ``generated`` (datetime or text; now when absent), ``runs`` and ``versions``
    (mappings or lists, shown as lists), and any other key, shown as it is.
    """
    meta = dict(meta or {})
    toc = "".join(
        f'<li><a href="#section-{i}">{_text(section.title)}</a></li>'
        for i, section in enumerate(sections, 1)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title>",
        f"<style>\n{_STYLE}\n</style>",
        "</head>",
        "<body>",
        _header(title, meta),
        f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>",
        "<main>",
    ]
    plotly_js_done = False
    for i, section in enumerate(sections, 1):
        parts.append(f'<section id="section-{i}">')
        parts.append(f"<h2>{_text(section.title)}</h2>")
        parts.extend(f"<p>{_text(paragraph)}</p>" for paragraph in section.paragraphs)
        parts.extend(_table_html(table) for table in section.tables)
        for k, figure in enumerate(section.figures, 1):
            # plotly.js (~4.8 MB) goes in once, before the first figure that needs it.
            # Figure text reaches the page as JSON with <, > and / escaped by plotly.
            div = figure.to_html(
                full_html=False,
                include_plotlyjs=not plotly_js_done,
                include_mathjax=False,
                div_id=f"figure-{i}-{k}",
                config=FIGURE_CONFIG,
            )
            plotly_js_done = True
            parts.append(f'<div class="figure">{div}</div>')
        parts.append("</section>")
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# The comparison of stored runs


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in VERSION_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _label(key: str, names: Mapping[str, str]) -> str:
    return names.get(key) or model_label(key)


def export_meta(runs: Mapping[str, Run], names: Mapping[str, str] | None = None) -> dict:
    """The header of a comparison export: the runs it shows and the versions that made it."""
    names = names or {}
    return {
        "generated": datetime.now(UTC),
        "runs": {_label(key, names): f"{run.model}/{run.run_id}" for key, run in runs.items()},
        "versions": _versions(),
    }


def _runs_section(runs: Mapping[str, Run], names: Mapping[str, str]) -> Section:
    rows = {}
    for key, run in runs.items():
        protocol = run.manifest.protocol
        trained = run.manifest.versions
        rows[_label(key, names)] = {
            "model": run.model,
            "run id": run.run_id,
            "epochs": protocol.epochs,
            "batch size": protocol.batch_size,
            "seed": protocol.seed,
            "training images": protocol.train_limit or protocol.train_images,
            "follows the report": "yes" if run.follows_report else "no",
            "trained with": ", ".join(f"{k} {v}" for k, v in trained.items()) or "n/a",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "run"
    return Section(
        RUNS_TITLE,
        ["Every number below is computed from these runs' stored test-set predictions."],
        [table],
    )


def _metrics_section(evaluations: Mapping[str, Evaluation], names: Mapping[str, str]) -> Section:
    rows = {}
    for key, ev in evaluations.items():
        rows[_label(key, names)] = {
            "test images": ev.n,
            "accuracy": ev.accuracy,
            "log loss": ev.loss,
            "macro AUC": ev.macro_auc,
            "Shirt F1": float(ev.per_class.loc["Shirt", "f1"]),
            "Shirt AUC": ev.roc[SHIRT].auc,
            "hardest class (lowest F1)": ev.hardest_class,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "run"
    paragraphs = [
        "Accuracy and log loss on the held-out test set; AUC is one class against the rest, "
        "averaged over the ten classes (macro)."
    ]
    return Section(METRICS_TITLE, paragraphs, [table, auc_table(dict(evaluations))])


def _statistics_section(
    comparisons: Mapping[tuple[str, str], Comparison], names: Mapping[str, str]
) -> Section:
    paragraphs = [
        "Both models classified the same test images, so they are compared image by image: "
        "McNemar's exact test asks whether the images only one model gets right split evenly "
        "between the two, and a paired bootstrap over the images gives a confidence interval "
        "for the accuracy difference."
    ]
    rows = []
    for (key_a, key_b), result in comparisons.items():
        label_a, label_b = _label(key_a, names), _label(key_b, names)
        paragraphs.append(result.verdict(label_a, label_b))
        rows.append(
            {
                "A": label_a,
                "B": label_b,
                "accuracy A": result.accuracy_a,
                "accuracy B": result.accuracy_b,
                "difference B - A": result.difference,
                f"{1 - result.alpha:.0%} CI low": result.ci_low,
                f"{1 - result.alpha:.0%} CI high": result.ci_high,
                "McNemar p": result.mcnemar_p,
                "both right": result.agreement["both_right"],
                "only A right": result.agreement["only_a"],
                "only B right": result.agreement["only_b"],
                "both wrong": result.agreement["both_wrong"],
            }
        )
    return Section(STATISTICS_TITLE, paragraphs, [pd.DataFrame(rows).set_index(["A", "B"])])


def _static(figure: go.Figure, subtitle: str) -> go.Figure:
    """Replace a dashboard hint ("click a cell") that means nothing in a file."""
    figure.update_layout(title_subtitle_text=subtitle)
    return figure


def comparison_sections(
    runs: Mapping[str, Run], names: Mapping[str, str] | None = None
) -> list[Section]:
    """Sections comparing stored runs: runs, metrics, paired statistics (the first run against
    each other one), confusion matrices, the Shirt ROC curve, per-class F1, training curves.

    ``runs`` keys are the names figures colour and label by (registry model names give the
    dashboard's colours); ``names`` optionally maps a key to the label used in text and tables.
    """
    if not runs:
        raise ValueError("comparison_sections needs at least one run")
    names = dict(names or {})
    keys = list(runs)
    y_true = runs[keys[0]].y_true
    for key in keys[1:]:
        if not np.array_equal(runs[key].y_true, y_true):
            raise ValueError(
                f"{_label(key, names)} was evaluated on other test labels than "
                f"{_label(keys[0], names)}: the runs cannot be compared image by image"
            )
    evaluations = {key: evaluate(run.y_true, run.y_prob) for key, run in runs.items()}
    sections = [_runs_section(runs, names), _metrics_section(evaluations, names)]
    if len(keys) > 1:
        comparisons = {
            (keys[0], key): compare(y_true, runs[keys[0]].y_prob, runs[key].y_prob)
            for key in keys[1:]
        }
        sections.append(_statistics_section(comparisons, names))
    sections.append(
        Section(
            CONFUSION_TITLE,
            ["Rows are the true class, columns the predicted class; the diagonal is correct."],
            figures=[
                _static(
                    confusion_figure(ev.confusion, f"{_label(key, names)}: confusion matrix"),
                    "Number of test images",
                )
                for key, ev in evaluations.items()
            ],
        )
    )
    shirt = CLASS_NAMES[SHIRT]
    curves = {key: ev.roc[SHIRT] for key, ev in evaluations.items()}
    sections.append(
        Section(
            ROC_TITLE,
            [
                f"{shirt} is the class the course report found hardest. The curve shows the "
                "true positive rate against the false positive rate as the threshold on the "
                f"{shirt} probability moves; the second plot zooms into its top-left corner."
            ],
            figures=[roc_figure(curves, shirt), roc_figure(curves, shirt, zoom=True)],
        )
    )
    # Side by side: the first run and each other one (the chosen pair: one table).
    f1_tables = [
        comparison_tables.per_class_table(evaluations[keys[0]], evaluations[key], keys[0], key)
        for key in keys[1:]
    ] or [evaluations[keys[0]].per_class]
    delta = "the second run" if len(keys) == 2 else "each other run"
    sections.append(
        Section(
            F1_TITLE,
            [f"Δ columns: {delta} minus the first."] if len(keys) > 1 else [],
            f1_tables,
            [f1_bars_figure({key: ev.per_class for key, ev in evaluations.items()})],
        )
    )
    histories = {key: run.history for key, run in runs.items()}
    sections.append(
        Section(
            TRAINING_TITLE,
            [
                "Per epoch: training (solid) and held-out test (dashed). The test curve is for "
                "monitoring only; training does not use it."
            ],
            figures=[
                training_curves_figure(histories, metric="accuracy"),
                training_curves_figure(histories, metric="loss"),
            ],
        )
    )
    return sections


# ----------------------------------------------------------------------------------------------
# The dashboard's export: the comparison, calibration, the seeds


def _calibration_section(runs: Mapping[str, Run], names: Mapping[str, str]) -> Section:
    results = {key: calibration.calibrate(run.y_true, run.y_prob) for key, run in runs.items()}
    first, *others = results  # compared as the statistics are: the first with each other one
    texts = [calibration.calibration_text(results, names, pair=(first, key)) for key in others]
    return Section(
        CALIBRATION_TITLE,
        [*texts, calibration.ECE_CAPTION],
        [calibration.mistakes_table(results), calibration.ece_table(results)],
        [reliability_figure({key: c.reliability for key, c in results.items()}, names)],
    )


def _abstain_section(runs: Mapping[str, Run], names: Mapping[str, str]) -> Section:
    """Selective prediction at the ROC page's default threshold, the AURC and top-k accuracy."""
    curves = {key: selective.risk_coverage(run.y_true, run.y_prob) for key, run in runs.items()}
    points = {key: selective.abstain(curve, selective.THRESHOLD) for key, curve in curves.items()}
    top_k = {key: selective.top_k_accuracy(run.y_true, run.y_prob) for key, run in runs.items()}
    return Section(
        ABSTAIN_TITLE,
        [
            *(selective.abstention_text(names[key], point) for key, point in points.items()),
            selective.SELECTIVE_CAPTION,
        ],
        [selective.aurc_table(curves), selective.top_k_table(top_k)],
        [accuracy_coverage_figure(curves, points, names)],
    )


def _seeds_section(collected: seeds.Collected, pair: tuple[str, str] | None = None) -> Section:
    """Every model's seeds; the paired-by-seed verdict on ``pair`` (default: the first two)."""
    if not seeds.has_spread(collected):
        return Section(SEEDS_TITLE, [seeds.more_seeds_text(collected)])
    found = seeds.summarize_collected(collected)
    paragraphs = [
        seeds.ACROSS_SEEDS_NOTE.replace("**", ""),
        seeds.paired_verdict(found, pair).text,
        power.seed_power_text(found, pair),
        BEST_PUBLISHED_NOTE,
    ]
    references = reference_lines("accuracy", list(found))
    return Section(
        SEEDS_TITLE,
        paragraphs,
        [seeds.seed_table(found), seeds.class_f1_table(found)],
        [seed_metric_figure(found, metric="accuracy", references=references)],
    )


def _robustness_section(runs: Mapping[str, Run], names: Mapping[str, str]) -> Section | None:
    """The first two runs under corruptions, where both have it in their cache (the Robustness
    page computes it); None otherwise."""
    keys = list(runs)[:2]
    results = {key: robustness.read_cached(runs[key]) for key in keys}
    if len(keys) < 2 or any(result is None for result in results.values()):
        return None
    a, b = keys
    try:
        table = robustness.paired_table(results[a], results[b])
    except ValueError:  # cached on other test images: not paired
        return None
    errors, titles = robustness.corruption_errors(results[a], results[b]), robustness.titles()
    accuracy = {key: result.accuracy() for key, result in results.items()}
    return Section(
        ROBUSTNESS_TITLE,
        robustness.robustness_text(table, errors, a, b, results[a].n),
        [robustness.summary_table(table, errors, a, b)],
        [
            robustness_figure(accuracy, titles, names),
            robustness_difference_figure(table, titles, a, b),
            robustness_severity_figure(table, titles, a, b),
        ],
    )


def export_sections(runs: Mapping[str, Run], root: Path | str) -> list[Section]:
    """The comparison of ``runs`` (registry model names to runs; the dashboard passes the
    chosen pair, A first), their calibration, and the seeds of the report's protocol found
    under the artifacts folder ``root`` (every model's; the verdict on the first two of runs)."""
    names = {key: display_name(key) for key in runs}
    sections = comparison_sections(runs, names)
    sections.append(_calibration_section(runs, names))
    sections.append(_abstain_section(runs, names))
    robust = _robustness_section(runs, names)
    if robust is not None:
        sections.append(robust)
    pair = tuple(runs)[:2] if len(runs) >= 2 else None
    sections.append(_seeds_section(seeds.collect(root), pair))
    return sections


def export_title(runs: Mapping[str, Run]) -> str:
    """The export's title: the report's pair, or the models it compares."""
    if tuple(runs) == DEFAULT_PAIR:
        return EXPORT_TITLE
    return f"Fashion-MNIST: {' vs '.join(display_name(key) for key in runs)}"


def export_html(runs: Mapping[str, Run], root: Path | str) -> str:
    """``export_sections`` as one self-contained HTML document (plotly.js inlined)."""
    names = {key: display_name(key) for key in runs}
    return html_document(export_title(runs), export_sections(runs, root), export_meta(runs, names))
