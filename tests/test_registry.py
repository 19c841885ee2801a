"""A model added without editing the registry works everywhere.

``FMNIST_EXTRA_MODELS=tests.extra_model`` registers the probe model (tests/extra_model.py:
BatchNormalization, Dropout, a stride-2 convolution, global average pooling) in every process
that inherits it. Here: how the setting is read and refused, the trainer's command line under
it, the functions that compare two models given a chosen pair, and every page of the dashboard
run in AppTest in a child process that has the setting (as the Streamlit server would), on
TINY runs of all three models and before the probe has a run. Expected numbers are computed
here from the stored predictions (scikit-learn, numpy) or with Keras, not read from the pages.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core import artifacts, calibration, export, models
from core.data import CLASS_NAMES, first_per_class
from core.models import EXTRA_MODELS_ENV, SHIPPED, RegistryError, build_registry
from tests import extra_model
from tests.apptools import markdown_tables, metric_tiles
from tests.conftest import TINY

PROBE = extra_model.SPECS[0]
SETTING = "tests.extra_model"
LABELS = {"baseline": "Baseline CNN", "residual": "Residual CNN", "probe": "Probe CNN"}
PROJECT = Path(__file__).resolve().parent.parent
PAGES = tuple(sorted(path.stem for path in (PROJECT / "pages").glob("*.py")))  # every page
COMPARING = ("confusion", "roc", "compare", "map")  # at least these compare the chosen pair
EVERY_MODEL = ("overview", "training", "predict")  # these show every model


def child(code: str, *args: str, setting: str | None = SETTING, **kwargs):
    """Run ``python -c code`` in the project with FMNIST_EXTRA_MODELS set to ``setting``."""
    env = {k: v for k, v in os.environ.items() if k != EXTRA_MODELS_ENV}
    if setting is not None:
        env[EXTRA_MODELS_ENV] = setting
    return subprocess.run(
        [sys.executable, *(("-c", code) if code else ()), *args], cwd=PROJECT, env=env,
        capture_output=True, text=True, timeout=300, **kwargs,
    )  # fmt: skip


def shipped():
    return [(spec, "the shipped registry") for spec in SHIPPED]


# --- reading the setting ----------------------------------------------------------------------


def test_extra_models_join_after_the_shipped_ones():
    registry = models.registry_from_env({EXTRA_MODELS_ENV: f" {SETTING} , "})
    assert list(registry) == ["baseline", "residual", "probe"]
    assert registry["probe"] is PROBE and registry["baseline"] is SHIPPED[0]
    assert list(models.registry_from_env({})) == ["baseline", "residual"]
    assert models.DEFAULT_PAIR == ("baseline", "residual")


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for throwaway registry modules (``write(name, source)``)."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        sys.modules.pop(name, None)
        return name

    return write


SPEC_SOURCE = "from core.models import ModelSpec\nfrom tests.extra_model import build_probe\n"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, r"cannot be imported \(ModuleNotFoundError: No module named 'no_such_module'\)"),
        ("raise RuntimeError('half-written')", r"cannot be imported \(RuntimeError: half-written"),
        (
            "X = 1",
            r"must define SPECS, a non-empty tuple of core.models.ModelSpec \(found NoneType",
        ),
        (SPEC_SOURCE + "SPECS = []", r"must define SPECS, a non-empty tuple .* \(found list\)"),
        ("SPECS = ('probe',)", r"expected a core.models.ModelSpec, got 'probe'"),
    ],
    ids=["missing", "raises", "no-specs", "list", "not-a-spec"],
)
def test_an_unusable_module_is_named_with_the_reason(module_dir, source, message):
    name = "no_such_module" if source is None else module_dir("bad_registry_module", source)
    with pytest.raises(RegistryError, match=f"^FMNIST_EXTRA_MODELS module '{name}'.*{message}"):
        models.registry_from_env({EXTRA_MODELS_ENV: f"{SETTING},{name}"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Probe net"}, "a name is 1-32 lower-case letters"),
        ({"name": "all"}, "'all' is reserved"),
        ({"build": None}, "build must be a function"),
        ({"display_name": " "}, "display_name must be a non-empty string"),
        ({"params": 0}, "params must be a positive integer, got 0"),
        ({"params": True}, "params must be a positive integer, got True"),
        ({"color": "green"}, "color must be '#RRGGBB', got 'green'"),
        ({"name": "baseline"}, "a model named 'baseline' is already registered"),
        ({"display_name": "residual cnn"}, "has the display_name 'residual cnn' of 'residual'"),
        ({"color": SHIPPED[0].color.lower()}, "has the color '#0072b2' of 'baseline'"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_a_bad_or_clashing_spec_is_refused(change, message):
    with pytest.raises(RegistryError, match=f"^mine: .*{re.escape(message)}"):
        build_registry([*shipped(), (replace(PROBE, **change), "mine")])


def test_the_same_module_twice_is_a_duplicate_name():
    with pytest.raises(RegistryError, match="a model named 'probe' is already registered"):
        models.registry_from_env({EXTRA_MODELS_ENV: f"{SETTING},{SETTING}"})


REPORT = (
    "import json, sys; from core import models; from core.train import build_parser, main; "
    "choices = next(a.choices for a in build_parser()._actions if a.dest == 'model'); "
    "print(json.dumps([models.MODEL_NAMES, models.REGISTRY_ERROR, choices]), flush=True); "
    "main(sys.argv[1:])"
)


def test_a_broken_setting_keeps_the_shipped_models_and_the_trainer_says_why():
    out = child(REPORT, "--model", "baseline", setting="tests.extra_model,tests.missing_models")
    names, problem, choices = json.loads(out.stdout)
    assert names == ["baseline", "residual"]  # the dashboard still opens, and shows `problem`
    assert choices == ["baseline", "residual", "all"]
    assert problem.startswith(
        "FMNIST_EXTRA_MODELS module 'tests.missing_models' cannot be imported "
        "(ModuleNotFoundError: No module named 'tests.missing_models')"
    )
    assert out.returncode == 2  # the trainer refuses to train without the models asked for
    assert out.stderr.strip().endswith(f"error: {problem}")


# --- functions that compare two models take the pair ------------------------------------------


def fake_calibration(accuracy: float, confidence: float) -> calibration.Calibration:
    """100 images: the first ``accuracy * 100`` right, every top class at ``confidence``."""
    n_right = round(accuracy * 100)
    y_true = np.zeros(100, dtype=np.int64)
    y_prob = np.full((100, 10), (1 - confidence) / 9)
    y_prob[:n_right, 0] = confidence
    y_prob[n_right:, 1] = confidence
    y_prob[n_right:, 0] = (1 - confidence) / 9
    return calibration.calibrate(y_true, y_prob)


def test_calibration_text_compares_the_chosen_pair_of_several():
    results = {m: fake_calibration(a, 0.9) for m, a in (("baseline", 0.8), ("residual", 0.9),
                                                         ("probe", 0.7))}  # fmt: skip
    text = calibration.calibration_text(results, LABELS, pair=("baseline", "probe"))
    assert text.startswith("Baseline CNN is more accurate than Probe CNN (80.00% vs 70.00%)")
    assert "Residual CNN" not in text
    # |0.8 - 0.9| and |0.7 - 0.9|: one confidence bin each
    assert "10.0% for Baseline CNN (over-confident on average), 20.0% for Probe CNN" in text
    assert calibration.calibration_text(results, LABELS, pair=("probe", "baseline")).startswith(
        "Baseline CNN is more accurate than Probe CNN"
    )  # the more accurate one first, whichever is A
    two = {m: results[m] for m in ("baseline", "residual")}
    assert calibration.calibration_text(two, ["B", "R"]) == calibration.calibration_text(
        results, {"baseline": "B", "residual": "R"}, pair=("baseline", "residual")
    )
    with pytest.raises(ValueError, match=r"two models, got 3 \(baseline, residual, probe\)"):
        calibration.calibration_text(results)
    with pytest.raises(ValueError, match="no calibration of 'vgg' to compare"):
        calibration.calibration_text(results, pair=("baseline", "vgg"))
    with pytest.raises(ValueError, match="got 'probe' twice"):
        calibration.calibration_text(results, pair=("probe", "probe"))


# --- TINY runs of the three models, and the pages ----------------------------------------------


@pytest.fixture(scope="module")
def with_probe():
    """The probe in this process's registry, found by name (MODEL_NAMES stays the shipped two:
    the dashboard's own processes get it from the setting)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(models.REGISTRY, PROBE.name, PROBE)
        yield PROBE


def page_scenario(page: str, *steps: list, root: str = "probe") -> dict:
    """Over the artifacts folder ``root`` ("probe" or "bare"), open ``page``, then do ``steps``:
    ["select", sidebar key, value], ["radio", key, value], ["tab", key, label] (a lazy tab
    opened) or ["page", name]. Predict is asked
    about a test image (the drawing pad is a stand-in here)."""
    first = [["radio", "predict_source", "Test image"]] if page == "predict" else []
    return {"root": root, "steps": [["page", page], *first, *steps]}


PAIR_PROBE = ["select", "pair_picker_b", "probe"]


def tiny_copy(tiny_root: Path, folder: Path) -> Path:
    """tiny_root's runs (baseline, residual; their caches too), for the pages to add to."""
    shutil.copytree(tiny_root, folder, ignore=shutil.ignore_patterns(".*"))
    return folder


@pytest.fixture(scope="module")
def roots(tiny_root, tmp_path_factory) -> dict[str, Path]:
    """Two folders: "bare", TINY runs of baseline and residual; "probe", those and a TINY run
    of the probe, trained by ``python -m core.train --model probe`` under the setting."""
    base = tmp_path_factory.mktemp("registry")
    bare, probe = tiny_copy(tiny_root, base / "bare"), tiny_copy(tiny_root, base / "probe")
    flags = {"--epochs": TINY["epochs"], "--batch-size": TINY["batch_size"],
             "--train-limit": TINY["train_limit"], "--log-every": TINY["log_every"]}  # fmt: skip
    args = [str(v) for flag, value in flags.items() for v in (flag, value)]
    out = child("", "-m", "core.train", "--model", "probe", *args, "--out", str(probe), "--quiet")
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.startswith("probe: test accuracy")
    return {"bare": bare, "probe": probe}


def test_the_trainer_trains_the_extra_model_from_its_command_line(roots, with_probe):
    run = artifacts.load_run("probe", root=roots["probe"])  # verified, and the default
    assert run.manifest.params == PROBE.params and run.manifest.protocol.train_limit == 512
    assert run.y_prob.shape == (10_000, 10) and not run.follows_report


@pytest.fixture(scope="module")
def shown(roots) -> dict[str, dict]:
    """Every page with the default pair and with baseline vs probe; the pair picker's swap; and,
    before the probe has a run ("bare"), the pages that show every model and the probe chosen
    for a comparison. All in one child process that has the setting."""
    scenarios = {page: page_scenario(page) for page in PAGES}
    for page in PAGES:
        steps = [PAIR_PROBE] + ([["radio", "map_model", "probe"]] if page == "map" else [])
        scenarios[f"{page}, baseline vs probe"] = page_scenario(page, *steps)
    scenarios["roc calibration, baseline vs probe"] = page_scenario(
        "roc", PAIR_PROBE, ["tab", "roc_section", "Calibration"]
    )
    scenarios["picked on Confusion, A swapped, then Compare"] = page_scenario(
        "confusion", PAIR_PROBE, ["select", "pair_picker_a", "probe"], ["page", "compare"]
    )
    for page in EVERY_MODEL:
        scenarios[f"{page}, no probe run"] = page_scenario(page, root="bare")
    scenarios["compare, baseline vs probe, no probe run"] = page_scenario(
        "compare", PAIR_PROBE, root="bare"
    )
    result = roots["probe"].parent / "pages.json"
    code = "import sys; from tests.test_registry import drive_main; drive_main(*sys.argv[1:])"
    folders = {name: str(path) for name, path in roots.items()}
    out = child(code, json.dumps(scenarios), json.dumps(folders), str(result))
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(result.read_text(encoding="utf-8"))


def test_the_dashboard_process_reads_the_setting(shown):
    """What the Streamlit server (and the trainer the Training page starts) sees."""
    assert shown["registry"] == {
        "models": ["baseline", "residual", "probe"],
        "error": None,
        "train_choices": ["baseline", "residual", "probe", "all"],
    }


@pytest.fixture(scope="module")
def stored(roots, with_probe) -> dict[str, artifacts.Run]:
    return {m: artifacts.load_run(m, root=roots["probe"]) for m in LABELS}


def everything(page: dict) -> str:
    """All the text the main area shows: elements, widget options, table columns, traces."""
    return "\n".join([*page["texts"], *page["columns"], *page["traces"]])


def assert_compares(page: dict, a: str, b: str) -> None:
    """The page names models a and b, and no other model."""
    text = everything(page)
    for model, label in LABELS.items():
        assert (label in text) == (model in (a, b)), (label, page["title"])
    assert page["sidebar"]["pair_picker_a"]["value"] == a
    assert page["sidebar"]["pair_picker_b"]["value"] == b


@pytest.mark.parametrize("pair", ["default", "baseline vs probe"])
@pytest.mark.parametrize("page_name", PAGES)
def test_every_page_runs_with_three_models(shown, page_name, pair):
    """No exception or error; a page shows the pair's runs and names the pair and no other
    model, or shows every model's runs (and, for the Overview, Training, Predict, names them)."""
    name = page_name if pair == "default" else f"{page_name}, {pair}"
    result = shown[name]
    assert result["exception"] == [] and result["errors"] == [], name
    a, b = ("baseline", "residual") if pair == "default" else ("baseline", "probe")
    sidebar = result["sidebar"]
    assert sidebar["pair_picker_a"]["options"] == list(LABELS.values())
    assert sidebar["pair_picker_b"]["options"] == [LABELS[m] for m in LABELS if m != "baseline"]
    runs_shown = {key for key in sidebar if key.startswith("picker_")}
    if page_name in COMPARING or runs_shown == {f"picker_{a}", f"picker_{b}"}:
        assert runs_shown == {f"picker_{a}", f"picker_{b}"}  # the pair's runs only
        assert_compares(result, a, b)
    else:
        assert runs_shown == {f"picker_{m}" for m in LABELS}
        if page_name in EVERY_MODEL:
            text = everything(result)
            assert all(label in text for label in LABELS.values()), name


def metric(page: dict, label: str) -> str:
    (value,) = [value for name, value in page["metrics"] if name == label]
    return value


def accuracy(run: artifacts.Run) -> float:
    return float((run.y_prob.argmax(axis=1) == run.y_true).mean())


def test_compare_and_roc_compute_on_the_chosen_pair(shown, stored):
    base, probe = stored["baseline"], stored["probe"]
    difference = (accuracy(probe) - accuracy(base)) * 100
    compare = shown["compare, baseline vs probe"]
    assert metric(compare, "Accuracy, Probe CNN − Baseline CNN") == f"{difference:+.2f} points"
    roc = shown["roc, baseline vs probe"]
    for model in ("baseline", "probe"):
        run = stored[model]
        auc = roc_auc_score(run.y_true, run.y_prob, multi_class="ovr", average="macro")
        assert metric(roc, f"{LABELS[model]}: macro AUC") == f"{auc:.4f}"
    calibration_tab = shown["roc calibration, baseline vs probe"]
    (verdict,) = [t for t in calibration_tab["texts"] if "Mistakes made with at least" in t]
    assert "Probe CNN" in verdict and "Residual CNN" not in verdict


def test_overview_shows_every_model_and_the_verdict_on_the_pair(shown, stored):
    for name in ("overview", "overview, baseline vs probe"):
        page = shown[name]
        accuracies = [value for label, value in page["metrics"] if label == "Test accuracy"]
        assert accuracies == [f"{accuracy(stored[m]):.4f}" for m in LABELS]
    (verdict,) = [t for t in shown["overview, baseline vs probe"]["texts"] if "McNemar" in t]
    assert "Probe CNN" in verdict and "Baseline CNN" in verdict and "Residual CNN" not in verdict


def test_training_offers_every_model(shown):
    page = shown["training"]
    assert [*LABELS.values(), "All, one after the other"] in page["options"]
    assert all(f"**{label}**" in page["texts"] for label in LABELS.values())  # default runs


def test_predict_shows_every_model_as_keras_computes_it(shown, stored, dataset):
    """Every model's probabilities for the first test image, against Keras' own forward pass.
    (The probe's BatchNormalization and Dropout are the inference engine's part.)"""
    import keras

    page = shown["predict, baseline vs probe"]
    index = int(first_per_class(dataset.y_test, 3)[0])
    pixels = (dataset.x_test[index] / 255).astype(np.float32)  # (28, 28)
    bars = page["bars"]["predict_probs"]
    assert list(bars) == list(LABELS.values())
    for model, run in stored.items():
        net = keras.saving.load_model(run.path / artifacts.MODEL_FILE, compile=False)
        expected = np.asarray(net(pixels[None, :, :, None], training=False))[0]  # (10,)
        np.testing.assert_allclose(bars[LABELS[model]], expected, atol=1e-5)
        k = int(expected.argmax())
        assert f"1. {CLASS_NAMES[k]}: {expected[k]:.1%}" in "\n".join(page["texts"]), model


def test_the_pair_picker_swaps_and_follows_the_session_across_pages(shown):
    page = shown["picked on Confusion, A swapped, then Compare"]
    assert page["exception"] == []
    assert_compares(page, "probe", "baseline")  # A took B's model: they swapped
    assert page["title"] == "Compare the two models"
    assert any(label == "Accuracy, Baseline CNN − Probe CNN" for label, _ in page["metrics"])


@pytest.mark.parametrize("page_name", EVERY_MODEL)
def test_every_model_pages_run_before_the_extra_model_has_a_run(shown, page_name):
    result = shown[f"{page_name}, no probe run"]
    assert result["exception"] == [] and result["errors"] == [], page_name
    assert "Probe CNN: no usable run" in result["sidebar_texts"]
    if page_name == "training":  # the probe can be trained, and has no default run yet
        assert "Probe CNN" in everything(result) and "No usable run." in result["texts"]
    else:
        note = "No usable run of Probe CNN yet, so it is not shown here"
        assert any(t.startswith(note) for t in result["texts"]), page_name
        assert "Residual CNN" in everything(result)  # the others are shown


def test_a_pair_without_a_run_is_guarded(shown):
    result = shown["compare, baseline vs probe, no probe run"]
    assert result["exception"] == []
    assert any(t.startswith("No usable run of Probe CNN yet.") for t in result["texts"])
    assert "Accuracy" not in "\n".join(label for label, _ in result["metrics"])  # stopped


def test_export_of_the_chosen_pair_and_of_three_runs(stored, roots):
    """The Compare page exports its pair; given every model, the first against each other."""
    pair = {m: stored[m] for m in ("baseline", "probe")}
    document = export.export_html(pair, roots["probe"])
    assert "<title>Fashion-MNIST: Baseline CNN vs Probe CNN</title>" in document
    results = {m: calibration.calibrate(r.y_true, r.y_prob) for m, r in pair.items()}
    assert html.escape(calibration.calibration_text(results, LABELS)) in document
    assert "Residual CNN" not in document
    sections = export.export_sections(stored, roots["probe"])
    (calib,) = [s for s in sections if s.title == export.CALIBRATION_TITLE]
    for text, other in zip(calib.paragraphs, ("residual", "probe"), strict=False):
        first, second = sorted(("baseline", other), key=lambda m: -accuracy(stored[m]))
        assert text.startswith(f"{LABELS[first]} is more accurate than {LABELS[second]}")
    assert len(calib.paragraphs) == 3  # two comparisons, then the ECE caption
    assert math.isfinite(calib.tables[1].loc["All classes (top label)", "Probe CNN"])
    (f1,) = [s for s in sections if s.title == export.F1_TITLE]
    assert len(f1.tables) == 2 and f1.paragraphs == ["Δ columns: each other run minus the first."]


# --- the child process ------------------------------------------------------------------------


def _collect(at) -> dict:
    """What a page run shows, as JSON: main-area texts, metrics, widget options, table columns,
    chart traces (and small bar charts' values), the sidebar's selectboxes, exceptions."""
    from tests import seedtools

    main = at.main
    texts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success",
                 "warning", "error", "text"):  # fmt: skip
        texts += [str(element.value) for element in main.get(kind)]
    options = [list(w.options) for kind in ("radio", "selectbox") for w in main.get(kind)]
    texts += [f"{w.label}" for kind in ("radio", "selectbox") for w in main.get(kind)]
    texts += [option for group in options for option in group]
    texts += [tab.label for tab in main.get("tab")]
    tables = [d.value for d in [*main.dataframe, *main.table]] + markdown_tables(main.markdown)
    columns = [" · ".join(map(str, np.atleast_1d(c))) for table in tables for c in table.columns]
    traces, bars = [], {}
    for key, spec in seedtools.charts(at).items():
        traces += [trace.get("name") or "" for trace in spec["data"]]
        if key == "predict_probs":
            bars[key] = {t["name"]: seedtools.array(t["x"]).tolist() for t in spec["data"]}
    sidebar = {w.key: {"value": w.value, "options": list(w.options)} for w in at.sidebar.selectbox}
    sidebar_texts = [str(e.value) for e in at.sidebar.get("caption")]
    return {
        "title": at.title[0].value if at.title else None,
        "exception": [e.value for e in at.exception],
        "errors": [e.value for e in main.error],
        "texts": texts,
        "metrics": [[m.label, m.value] for m in main.metric]
        + [list(t) for t in metric_tiles(main)],
        "options": options,
        "columns": columns,
        "traces": traces,
        "bars": bars,
        "sidebar": sidebar,
        "sidebar_texts": sidebar_texts,
    }


def drive_main(scenarios: str, folders: str, out: str) -> None:
    """In the child: run each scenario in a fresh AppTest session over its artifacts folder
    (``folders`` by name), write what each showed, and what this process's registry is."""
    from streamlit.testing.v1 import AppTest

    from bench.fakes import install_fake_canvas
    from core.train import build_parser

    install_fake_canvas()
    (choices,) = [a.choices for a in build_parser()._actions if a.dest == "model"]
    results: dict = {
        "registry": {"models": models.MODEL_NAMES, "error": models.REGISTRY_ERROR,
                     "train_choices": choices},
    }  # fmt: skip
    folders = json.loads(folders)
    for name, scenario in json.loads(scenarios).items():
        started = time.perf_counter()
        os.environ[artifacts.ENV_VAR] = folders[scenario["root"]]
        at = AppTest.from_file(str(PROJECT / "dashboard.py"), default_timeout=180)
        at.run()
        for kind, *args in scenario["steps"]:
            if kind == "page":
                at.switch_page(f"pages/{args[0]}.py").run()
            elif kind == "select":
                at.sidebar.selectbox(key=args[0]).set_value(args[1]).run()
            elif kind == "tab":
                at.session_state[args[0]] = args[1]
                at.run()
            else:
                at.radio(key=args[0]).set_value(args[1]).run()
            if at.exception:
                break
        results[name] = _collect(at) | {"seconds": time.perf_counter() - started}  # to read
    Path(out).write_text(json.dumps(results), encoding="utf-8")


def test_a_broken_setting_is_said_in_the_sidebar_of_every_page(tiny_root, monkeypatch):
    """The dashboard opens on the shipped models and says why the others are missing."""
    from core.text import literal
    from tests import apptools

    with pytest.raises(RegistryError) as problem:
        models.registry_from_env({EXTRA_MODELS_ENV: "tests.missing_models"})
    monkeypatch.setattr(models, "REGISTRY_ERROR", str(problem.value))  # as its import sets it
    at = apptools.open_page(tiny_root, monkeypatch, "pages/compare.py")
    (error,) = at.sidebar.error
    assert error.value == f"Extra models not loaded: {literal(problem.value)}"  # verbatim
    assert "tests.missing_models" in error.value and at.title[0].value == "Compare the two models"


def test_the_seed_verdicts_take_the_pair(seed_root, with_probe):
    """The Overview's and the export's across-seeds sentences are on the chosen pair."""
    from core import power, seeds

    summaries = seeds.summarize_collected(seeds.collect(seed_root))
    assert seeds.paired_verdict(summaries, ("baseline", "residual")) == seeds.paired_verdict(
        summaries
    )
    assert seeds.paired_verdict(summaries, ("baseline", "probe")) == (
        "No seed of the report's protocol was trained for Probe CNN, so the models cannot be "
        "compared seed by seed.",
        False,
    )
    assert "(Residual CNN − Baseline CNN, as observed)" in power.seed_power_text(summaries)
    reverse = power.seed_power_text(summaries, ("residual", "baseline"))
    assert "(Baseline CNN − Residual CNN, as observed)" in reverse  # B − A of the pair given
    assert power.seed_power_text(summaries, ("baseline", "probe")).startswith(
        "With 0 seeds trained for both models"
    )
