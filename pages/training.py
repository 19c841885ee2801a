"""Training: start the trainer (its own process), follow it live, stop it; replay runs; defaults."""

import time

import streamlit as st

from core import artifacts, figures, jobs, live, published, seeds
from core.models import MODEL_NAMES, display_name
from core.text import literal
from core.train import REPORT_BATCH_SIZE, REPORT_EPOCHS, TrainConfig
from widgets import analysis, charts, picker, urlstate
from widgets.access import operator_ui

LIVE = "training_live"  # session state: {model: jobs.LiveJob}, so each tick reads only new bytes
ACTIVE = "training_active"  # session state: whether a training ran at the last full run
STATE_BOX = {"done": st.success, "stopped": st.info, "failed": st.error, "died": st.error}

st.title("Training")
st.caption(
    "The trainer runs as its own process (`python -m core.train`): leaving this page, reloading "
    "or a second tab neither stops nor duplicates it. Defaults are the report's protocol."
)
may_change = operator_ui("train")  # off for visitors of an exposed dashboard
root = artifacts.artifacts_root()
followed: dict[str, jobs.LiveJob] = st.session_state.setdefault(LIVE, {})
for model in MODEL_NAMES:
    followed.setdefault(model, jobs.LiveJob(model)).poll(root)
active = any(job.running for job in followed.values())
if st.session_state.get(ACTIVE) and not active:
    picker.list_runs.clear()  # a training just ended: its run may be new
    analysis.seed_runs.clear()
st.session_state[ACTIVE] = active
url_done = urlstate.watch("training", picker.url_keys())  # the view is its link
runs = picker.selected_runs()  # no guard: this is the page that makes runs


@st.cache_data(show_spinner=False, max_entries=64)
def replay(model: str, run_id: str, root: str) -> live.Curves:
    return live.replay(artifacts.run_path(model, run_id, root))  # a published run never changes


st.subheader("Train")
a, b, c, d = st.columns([2, 1, 1, 1])
every = f"{'Both' if len(MODEL_NAMES) == 2 else 'All'}, one after the other"
choice = a.radio("Model", [*MODEL_NAMES, jobs.ALL], horizontal=True, key="train_model",
                 format_func=lambda m: every if m == jobs.ALL else display_name(m))  # fmt: skip
epochs = b.number_input("Epochs", min_value=1, value=REPORT_EPOCHS, key="train_epochs")
batch = c.number_input("Batch size", min_value=1, value=REPORT_BATCH_SIZE, key="train_batch")
seed = d.number_input("Seed", min_value=0, value=0, key="train_seed")
quick = st.checkbox("Quick run on a subset of the training images", key="train_quick")
limit = st.number_input(
    "Training images (quick run: not the report's protocol)", min_value=1, value=2000,
    key="train_limit", disabled=not quick,
)  # fmt: skip
settings = {"epochs": int(epochs), "batch_size": int(batch), "seed": int(seed),
            "train_limit": int(limit) if quick else None}  # fmt: skip
config = TrainConfig(MODEL_NAMES[0] if choice == jobs.ALL else choice, **settings)
try:
    config.validate()
    problem = None
except ValueError as exc:
    problem = str(exc)
    st.error(f"Cannot train with these settings: {problem}.", icon=":material/error:")
if not problem and not config.follows_report:
    st.warning("Not the report's protocol (10 epochs, batch 32, all 60,000 images): a quick run.")
if (
    st.button(
        "Train", type="primary", key="train_start", disabled=problem is not None or not may_change
    )
    and may_change  # a disabled button's click could still be forged: checked here too
):
    try:
        (pid,) = jobs.start_training(choice, root=root, **settings)
        st.success(f"Started the trainer (pid {pid}); its curves appear below as it logs.")
    except jobs.TrainingBusy as exc:
        st.warning(str(exc), icon=":material/hourglass_top:")
    except (ValueError, OSError) as exc:
        st.error(f"Could not start the trainer: {literal(exc)}", icon=":material/error:")


@st.fragment(run_every=1.5 if active else 5.0)  # idle: still notice a job another tab starts
def live_ui() -> None:
    jobs_now = {m: followed[m].poll(root) for m in MODEL_NAMES}
    if any(job.running for job in jobs_now.values()) != active:
        st.rerun()  # started or ended: refresh the run pickers and this fragment's timer
    shown = {m: job for m, job in jobs_now.items() if job.status}
    if not shown:
        st.caption("Nothing has been trained in this artifacts folder yet.")
        return
    for model, job in shown.items():
        text = f"**{display_name(model)}**: {jobs.status_text(job.status)}"
        if job.running:
            p = live.progress(job.records, now=time.time())
            st.progress(p.fraction, text=f"{text} · {live.progress_text(p)}")
        else:
            STATE_BOX.get(job.state, st.info)(text)
    stop = active and st.button(
        "Stop training", key="train_stop", icon=":material/stop:", disabled=not may_change
    )
    if stop and may_change:
        st.info("Stop sent; the trainer ends cleanly and saves nothing." if jobs.stop_all(root)
                else "Nothing to stop: the training has already ended.")  # fmt: skip
    curves = {m: live.split_records(job.records) for m, job in shown.items() if job.records}
    if curves:
        metric = st.session_state.get("train_metric", "accuracy")
        fig = figures.training_curves_figure(**live.figure_inputs(curves), metric=metric)
        st.plotly_chart(fig, width="stretch", key="train_live_chart")


st.subheader("Current or last training")
live_ui()

st.subheader("Curves of finished runs")
metric = st.radio("Metric", figures.METRICS, horizontal=True, key="train_metric")
collected = analysis.seed_runs(str(root))
seeded = any(collected.values())
bands = st.toggle(
    "All seeds of the report's protocol, mean ± std", key="train_seed_bands", disabled=not seeded,
    help=None if seeds.has_spread(collected) else seeds.more_seeds_text(collected),
) and seeded  # fmt: skip
if bands:
    curves = analysis.seed_curves(collected, str(root))
    fig = charts.seed_curves_figure(curves, metric=metric,
                                    references=published.reference_lines(metric))  # fmt: skip
    st.plotly_chart(fig, width="stretch", key="train_seed_chart")
    st.caption(published.curves_caption(metric))
else:
    infos = {(m, i.run_id): i for m in MODEL_NAMES for i in picker.list_runs(m, str(root)) if i.ok}
    picked = {(m, r.run_id) for m, r in runs.items() if r is not None}
    extra = st.multiselect(
        "Overlay other runs", [k for k in infos if k not in picked], key="train_overlay",
        format_func=lambda k: f"{display_name(k[0])}: {infos[k].label()}",
    )  # fmt: skip
    shown = {m: replay(m, rid, str(root)) for m, rid in sorted(picked)}
    shown |= {f"{display_name(m)} {rid}": replay(m, rid, str(root)) for m, rid in extra}
    if shown:
        fig = analysis.training_curves_figure(live.figure_inputs(shown), metric)
        st.plotly_chart(fig, width="stretch", key="train_replay_chart")
        st.caption(published.curves_caption(metric))
    else:
        st.info("No finished run yet: train one above.")

st.subheader("Default runs")
st.caption("The run each model opens with, in every new session.")
for column, model in zip(st.columns(len(MODEL_NAMES)), MODEL_NAMES, strict=True):
    listed = picker.list_runs(model, str(root))
    good = {i.run_id: i for i in listed if i.ok}
    with column:
        st.markdown(f"**{display_name(model)}**")
        if good:
            current = artifacts.default_run_id(model, root)
            pick = st.selectbox("Run", list(good), index=list(good).index(current),
                                format_func=lambda rid, g=good: g[rid].label(),
                                key=f"train_default_{model}")  # fmt: skip
            if (
                st.button(
                    "Make default", key=f"train_make_default_{model}",
                    disabled=pick == current or not may_change,
                )
                and may_change
            ):  # fmt: skip
                try:
                    artifacts.set_default(model, pick, root)
                    picker.list_runs.clear()
                    st.success(f"{pick} is now the default of {display_name(model)}.")
                except (artifacts.RunError, OSError) as exc:
                    st.error(f"Could not make {pick} the default: {literal(exc)}")
        else:
            st.caption("No usable run.")
        for info in (i for i in listed if not i.ok):
            st.warning(f"Damaged: {info.run_id}: {literal(info.problem)}. Retrain it above.")
url_done()
