"""Overview: both models side by side, whether the difference is real, and the report beside us."""

import streamlit as st

from core import published, seeds
from core.artifacts import RunError, artifacts_root
from core.data import CLASS_NAMES, first_per_class
from core.modelfile import UnsupportedModel
from core.models import REGISTRY, display_name
from core.runcache import LAYER_COLUMNS
from core.text import Rows, literal
from widgets import analysis, cached, nav, picker, urlstate
from widgets.images import image_grid
from widgets.layout import metric_grid, static_table


def _architecture(name: str, run):
    try:
        return cached.architecture(run)
    except (RunError, UnsupportedModel) as exc:
        st.warning(f"The architecture of {display_name(name)} cannot be shown: {literal(exc)}")
        return None


def _layer_rows(model) -> Rows:
    rows = [
        [*(str(row[c]) for c in LAYER_COLUMNS[:-1]), f"{row['params']:,}"] for row in model.rows
    ]
    return list(LAYER_COLUMNS), rows


def architectures_ui(runs: dict) -> None:
    """Every model's layers side by side, then one lazy tab per model with its layer graph: only
    the open tab is drawn, and the first screen draws no graph (Graphviz's renderer is a second
    of a cold start in the browser)."""
    labels = ["Layers side by side", *(f"{display_name(n)}: layer graph" for n in runs)]
    tabs = st.tabs(labels, key="overview_architecture", on_change="rerun")
    if tabs[0].open:
        with tabs[0], st.container(key="overview_layers"):
            for column, (name, run) in zip(st.columns(len(runs)), runs.items(), strict=True):
                model = _architecture(name, run)
                if model is None:
                    continue
                with column:
                    st.markdown(f"**{display_name(name)}**")
                    static_table(_layer_rows(model), key=f"overview_layers_{name}")
                    st.caption(f"{model.params:,} parameters. {REGISTRY[name].description}")
    for tab, (name, run) in zip(tabs[1:], runs.items(), strict=True):
        if not tab.open:
            continue
        with tab:
            model = _architecture(name, run)
            if model is not None:
                st.graphviz_chart(model.dot, width="content")
                st.caption(f"{model.params:,} parameters. {REGISTRY[name].description}")


st.title("Baseline vs residual CNN on Fashion-MNIST")
st.caption(
    "Two Keras CNNs from a course report, trained on all 60,000 training images (10 epochs, "
    "batch 32, Adam) and scored on the 10,000 held-out test images."
)
url_done = urlstate.watch("overview", picker.url_keys())  # the view is its link
runs = picker.selected_runs()
picker.require_runs(runs)
# Checking the data set files runs beside the page, not before it: remembered, it is a few
# `stat` calls, but the first check (or one after a change) decompresses and hashes 30 MB.
st.fragment(picker.dataset_warning, parallel=True)(runs)
runs = picker.usable(runs)  # every model with a run; those without are named
pair = picker.chosen_pair()  # the verdicts compare the sidebar's pair

evals = {name: cached.evaluation(run) for name, run in runs.items()}
comparison = cached.comparison(*(runs[name] for name in pair))
quick = [display_name(n) for n, r in runs.items() if not r.follows_report]
if quick:
    st.warning(f"{' and '.join(quick)}: a quick run that does not follow the report's protocol.")

columns = st.columns(len(runs))
for column, (name, run) in zip(columns, runs.items(), strict=True):
    e, m = evals[name], run.manifest
    with column:
        st.subheader(display_name(name))
        metric_grid([
            ("Test accuracy", f"{e.accuracy:.4f}", None),
            ("Test loss", f"{e.loss:.4f}", None),
            ("Macro F1", f"{e.macro_f1:.4f}", None),
            ("Macro AUC", f"{e.macro_auc:.4f}", None),
            ("Parameters", f"{m.params:,}", None),
            ("Seconds / epoch", f"{run.mean_epoch_seconds:.0f}",
             "Measured while this run trained, on its machine and under its load."),
        ], key=f"overview_metrics_{name}")  # fmt: skip

verdict = comparison.verdict(*map(display_name, pair))
st.markdown(seeds.CHOSEN_RUNS_NOTE)
(st.success if comparison.significant else st.info)(verdict, icon=":material/balance:")
root = str(artifacts_root())
collected = analysis.seed_runs(root)
several = seeds.has_spread(collected)
if several:
    summaries = analysis.summaries(collected, root)
    across = analysis.seed_verdicts(collected, summaries, pair, root)
    st.markdown(seeds.ACROSS_SEEDS_NOTE)
    (st.success if across.clear else st.info)(across.text, icon=":material/stacked_line_chart:")
    st.caption(across.power)
else:
    st.caption(seeds.more_seeds_text(collected))
st.page_link(
    nav.COMPARE,
    label="Details: agreement table, per-class F1",
    icon=":material/compare_arrows:",
)

if several:
    st.subheader("Across seeds")
    st.fragment(analysis.seeds_ui)(summaries)

st.subheader("The report's figures and ours")
static_table(published.course_report_rows(evals), key="overview_report_table")

st.subheader("Architectures")
st.fragment(architectures_ui)(runs)

st.subheader("Test images by class")
x_test, y_test = cached.test_set()
index = [int(i) for i in first_per_class(y_test, 6)]
names = [CLASS_NAMES[y_test[i]] for i in index]
image_grid(list(cached.test_images_png(tuple(index))), names,
           [f"Test image {i}: {name}" for i, name in zip(index, names, strict=True)],
           key="sample_grid", scale=3)  # fmt: skip
url_done()
