"""Overview: both models side by side, whether the difference is real, and the report beside us."""

import streamlit as st

from core import power, published, seeds
from core.artifacts import RunError, artifacts_root
from core.data import CLASS_NAMES, first_per_class
from core.modelfile import UnsupportedModel
from core.models import REGISTRY, display_name
from core.text import literal
from widgets import analysis, cached, charts, layout, nav, picker

st.title("Baseline vs residual CNN on Fashion-MNIST")
st.caption(
    "Two Keras CNNs from a course report, trained on all 60,000 training images (10 epochs, "
    "batch 32, Adam) and scored on the 10,000 held-out test images."
)
runs = picker.selected_runs()
picker.require_runs(runs)
picker.dataset_warning(runs)

evals = {name: cached.evaluation(run) for name, run in runs.items()}
names = list(runs)
comparison = cached.comparison(runs[names[0]], runs[names[1]])
quick = [display_name(n) for n, r in runs.items() if not r.follows_report]
if quick:
    st.warning(f"{' and '.join(quick)}: a quick run that does not follow the report's protocol.")

columns = st.columns(len(runs))
for column, (name, run) in zip(columns, runs.items(), strict=True):
    e, m = evals[name], run.manifest
    with column:
        st.subheader(display_name(name))
        a, b, c = st.columns(3)
        a.metric("Test accuracy", f"{e.accuracy:.4f}")
        b.metric("Test loss", f"{e.loss:.4f}")
        c.metric("Macro F1", f"{e.per_class.loc['macro avg', 'f1']:.4f}")
        a.metric("Macro AUC", f"{e.macro_auc:.4f}")
        b.metric("Parameters", f"{m.params:,}")
        c.metric(
            "Seconds / epoch", f"{run.mean_epoch_seconds:.0f}",
            help="Measured while this run trained, on its machine and under its load.",
        )  # fmt: skip

verdict = comparison.verdict(display_name(names[0]), display_name(names[1]))
st.markdown(seeds.CHOSEN_RUNS_NOTE)
(st.success if comparison.significant else st.info)(verdict, icon=":material/balance:")
root = str(artifacts_root())
collected = analysis.seed_runs(root)
several = seeds.has_spread(collected)
if several:
    summaries = analysis.summaries(collected, root)
    seed_verdict, clear = seeds.paired_verdict(summaries)
    st.markdown(seeds.ACROSS_SEEDS_NOTE)
    (st.success if clear else st.info)(seed_verdict, icon=":material/stacked_line_chart:")
    st.caption(power.seed_power_text(summaries))
else:
    st.caption(seeds.more_seeds_text(collected))
st.page_link(
    nav.COMPARE,
    label="Details: agreement table, per-class F1",
    icon=":material/compare_arrows:",
)

if several:
    st.subheader("Across seeds")
    st.caption("Each model's test figures over its seeds: mean ± standard deviation (n − 1).")
    table = seeds.seed_table(summaries)
    st.container(key="overview_seed_table").dataframe(
        table, width="stretch", height=layout.table_height(len(table))
    )
    chart = charts.seed_metric_figure(summaries, metric="accuracy",
                                      references=published.ACCURACY_REFERENCES)  # fmt: skip
    st.plotly_chart(chart, width="stretch", key="overview_seed_chart")
    st.caption(published.BEST_PUBLISHED_NOTE)
    with st.expander("F1 of each class across seeds"):
        table = seeds.class_f1_table(summaries)
        st.container(key="overview_class_f1_table").dataframe(
            table, width="stretch", height=layout.table_height(len(table))
        )

st.subheader("The report's figures and ours")
table = published.course_report_table_text(evals)
st.dataframe(table, width="stretch", height=layout.table_height(len(table)))

st.subheader("Architectures")
for tab, (name, run) in zip(st.tabs([display_name(n) for n in runs]), runs.items(), strict=True):
    with tab:
        try:
            model = cached.predictor(run)
        except (RunError, UnsupportedModel) as exc:
            st.warning(f"The architecture cannot be shown: {literal(exc)}")
            continue
        left, right = st.columns([3, 2])
        left.dataframe(model.layer_table(), hide_index=True, width="stretch")
        left.caption(f"{model.total_params:,} parameters. {REGISTRY[name].description}")
        right.graphviz_chart(model.to_dot(), width="content")

st.subheader("Test images by class")
x_test, y_test = cached.test_set()
index = first_per_class(y_test, 6)
grid = charts.sample_grid_figure(x_test[index], [CLASS_NAMES[y_test[i]] for i in index], columns=12)
st.plotly_chart(grid, width="stretch", key="sample_grid")
