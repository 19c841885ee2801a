"""core.seeds: choosing one run per seed, spread over seeds, the comparison paired by seed, and
the tables and sentences that show them."""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from core import artifacts, seeds
from core.artifacts import Run
from core.data import CLASS_NAMES, NUM_CLASSES
from core.models import MODEL_NAMES, REGISTRY
from core.seeds import SEED_METRICS, SeedSummary
from tests import seedtools
from tests.seedtools import SEEDS

LABELS = list(range(NUM_CLASSES))


def make_predictions(n: int, errors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) and float32 softmax-like rows (n, 10) with exactly ``errors`` wrong images."""
    rng = np.random.default_rng(seed)
    y_true = np.arange(n) % NUM_CLASSES
    top = y_true.copy()
    wrong = rng.choice(n, size=errors, replace=False)
    top[wrong] = (y_true[wrong] + 1 + rng.integers(0, NUM_CLASSES - 1, errors)) % NUM_CLASSES
    confidence = rng.uniform(0.4, 0.99, n)  # (n,)
    y_prob = np.empty((n, NUM_CLASSES))
    y_prob[:] = ((1 - confidence) / (NUM_CLASSES - 1))[:, None]
    y_prob[np.arange(n), top] = confidence
    return y_true, y_prob.astype(np.float32)


def fake_run(model: str, seed: int, n: int = 300, errors: int = 30, history=None) -> Run:
    y_true, y_prob = make_predictions(n, errors, seed=1000 * len(model) + seed)
    return Run(
        model=model,
        run_id=f"fake-seed{seed}",
        path=Path("/nonexistent"),
        manifest=seedtools.manifest(
            model,
            f"fake-seed{seed}",
            seed,
            seedtools.history(np.random.default_rng(seed)),
            test={"n": n, "accuracy": 1 - errors / n, "loss": 0.5},
        ),
        history=history or [],
        y_true=y_true,
        y_prob=y_prob,
    )


def expected_metrics(run: Run) -> dict:
    """Independent of core.metrics: scikit-learn straight from the stored arrays."""
    y_pred = run.y_prob.argmax(axis=1)
    prob = run.y_prob.astype(np.float64)
    prob /= prob.sum(axis=1, keepdims=True)
    return {
        "accuracy": float(np.mean(y_pred == run.y_true)),
        "loss": float(skm.log_loss(run.y_true, prob, labels=LABELS)),
        "macro_f1": float(skm.f1_score(run.y_true, y_pred, average="macro", labels=LABELS)),
        "per_class": skm.f1_score(run.y_true, y_pred, average=None, labels=LABELS),
    }


# --- summarize --------------------------------------------------------------------------------


def test_summarize_matches_independent_means_and_stds():
    runs = {s: fake_run("baseline", s, errors=e) for s, e in enumerate([30, 25, 41, 33, 28])}
    summary = seeds.summarize(runs)
    expected = {s: expected_metrics(run) for s, run in runs.items()}
    assert summary.model == "baseline" and summary.seeds == (0, 1, 2, 3, 4) and summary.n == 5
    assert summary.note is None
    for metric in SEED_METRICS:
        values = [expected[s][metric] for s in range(5)]
        assert summary.per_seed[metric].tolist() == pytest.approx(values, abs=1e-9)
        assert summary.mean(metric) == pytest.approx(statistics.mean(values), abs=1e-12)
        assert summary.std(metric) == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert summary.summary.loc[metric, "n"] == 5
    # Accuracy exactly as constructed: 300 images, the given number wrong.
    assert summary.per_seed["accuracy"].tolist() == pytest.approx(
        [1 - e / 300 for e in (30, 25, 41, 33, 28)]
    )
    assert list(summary.per_class_f1.columns) == list(CLASS_NAMES)
    for k, name in enumerate(CLASS_NAMES):
        values = [expected[s]["per_class"][k] for s in range(5)]
        assert summary.per_class_f1[name].tolist() == pytest.approx(values, abs=1e-12)
        assert summary.class_summary.loc[name, "mean"] == pytest.approx(statistics.mean(values))
        assert summary.class_summary.loc[name, "std"] == pytest.approx(statistics.stdev(values))


def test_summarize_ignores_the_manifest_numbers():
    run = fake_run("residual", 0)
    told = replace(run.manifest.test_metrics, accuracy=1.0)
    lying = replace(run, manifest=replace(run.manifest, test_metrics=told))
    summary = seeds.summarize({0: lying})
    assert summary.mean("accuracy") == pytest.approx(expected_metrics(run)["accuracy"])


def test_one_seed_has_no_spread_and_says_so():
    summary = seeds.summarize({3: fake_run("residual", 3)})
    assert summary.n == 1 and summary.seeds == (3,)
    assert math.isnan(summary.std("accuracy")) and summary.class_summary["std"].isna().all()
    assert summary.note == seeds.ONE_SEED_NOTE and "standard deviation undefined" in summary.note


def test_summarize_rejects_nothing_and_mixed_models():
    with pytest.raises(ValueError, match="at least one seed"):
        seeds.summarize({})
    with pytest.raises(ValueError, match="runs of one model"):
        seeds.summarize({0: fake_run("baseline", 0), 1: fake_run("residual", 1)})


# --- paired -----------------------------------------------------------------------------------


def by_hand(values: dict[int, tuple[float, float, float]], model: str = "m") -> SeedSummary:
    """A SeedSummary with chosen (accuracy, loss, macro_f1) per seed."""
    seeds_ = tuple(values)
    per_class = np.full((len(seeds_), len(CLASS_NAMES)), np.nan)  # not used by the pairing
    return SeedSummary(model, seeds_, np.array([values[s] for s in seeds_], float), per_class)


def t_interval_by_hand(diffs: list[float], confidence: float = 0.95):
    n = len(diffs)
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    t_stat = mean / (sd / math.sqrt(n))
    p = 2 * stats.t.sf(abs(t_stat), n - 1)
    return mean, sd, mean - half, mean + half, p


def test_paired_from_real_summaries_matches_hand_computation():
    errors_a = {0: 30, 1: 27, 2: 33, 3: 31, 4: 29}
    errors_b = {0: 25, 1: 24, 2: 27, 3: 31, 4: 30, 9: 10}  # seed 9 has no partner in A
    runs_a = {s: fake_run("baseline", s, errors=e) for s, e in errors_a.items()}
    runs_b = {s: fake_run("residual", s, errors=e) for s, e in errors_b.items()}
    result = seeds.paired(seeds.summarize(runs_a), seeds.summarize(runs_b))
    assert result.seeds == (0, 1, 2, 3, 4) and result.n == 5
    acc = [(errors_a[s] - errors_b[s]) / 300 for s in range(5)]  # b - a
    loss = [
        expected_metrics(runs_b[s])["loss"] - expected_metrics(runs_a[s])["loss"] for s in range(5)
    ]
    assert result.differences["accuracy"].tolist() == pytest.approx(acc, abs=1e-12)
    assert result.differences["loss"].tolist() == pytest.approx(loss, abs=1e-9)
    mean, sd, low, high, p = t_interval_by_hand(acc)
    assert result.mean_difference == pytest.approx(mean)
    assert result.std_difference == pytest.approx(sd)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high))
    assert result.p_value == pytest.approx(p)
    assert result.b_better == 3 and result.a_better == 1  # seed 3 ties, seed 4 A wins
    assert result.table.loc["accuracy", "ties"] == 1
    # For loss, lower is better: B is better where its loss difference is negative.
    assert result.table.loc["loss", "b_better"] == sum(d < 0 for d in loss)
    mean_l, _, low_l, high_l, p_l = t_interval_by_hand(loss)
    row = result.table.loc["loss"]
    assert (row["mean"], row["ci_low"], row["ci_high"], row["p_value"]) == pytest.approx(
        (mean_l, low_l, high_l, p_l)
    )


def test_paired_verdict_in_the_usual_case():
    a = {s: (0.912, 0.26, 0.91) for s in range(5)}
    diffs = [0.009, 0.012, 0.006, 0.010, 0.008]  # B better on every seed
    b = {s: (0.912 + d, 0.30, 0.92) for s, d in enumerate(diffs)}
    result = seeds.paired(by_hand(a), by_hand(b))
    mean, sd, low, high, p = t_interval_by_hand(diffs)
    text = seeds.paired_verdict_text(result, ("Baseline CNN", "Residual CNN"))
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
    assert text == (
        f"Across 5 seeds, Residual CNN is {mean * 100:.1f} ± {sd * 100:.1f} points more accurate "
        f"than Baseline CNN (paired by seed, 95% CI {low * 100:.1f} to {high * 100:.1f} points; "
        f"better in 5 of 5 seeds; paired t-test {p_text})."
    )
    assert "0.9 ± 0.2 points" in text and low > 0
    assert result.clear


def test_paired_verdict_names_the_better_model_first():
    a = {s: (0.92 + d, 0.3, 0.9) for s, d in enumerate([0.01, 0.02, 0.015])}
    b = {s: (0.92, 0.3, 0.9) for s in range(3)}
    result = seeds.paired(by_hand(a), by_hand(b))
    assert result.mean_difference < 0 and result.b_better == 0 and result.a_better == 3
    text = seeds.paired_verdict_text(result, ("A net", "B net"))
    _, _, low, high, _ = t_interval_by_hand([-0.01, -0.02, -0.015])
    assert text.startswith("Across 3 seeds, A net is 1.5 ± 0.5 points more accurate than B net")
    assert f"95% CI {-high * 100:.1f} to {-low * 100:.1f} points" in text
    assert "better in 3 of 3 seeds" in text
    assert result.clear  # clear of zero below it


def test_paired_verdict_when_the_interval_crosses_zero():
    a = {s: (0.90, 0.3, 0.9) for s in range(4)}
    b = {s: (0.90 + d, 0.3, 0.9) for s, d in enumerate([0.004, -0.003, 0.006, -0.002])}
    result = seeds.paired(by_hand(a), by_hand(b))
    assert result.ci_low < 0 < result.ci_high
    text = seeds.paired_verdict_text(result, ("A", "B"))
    assert "B is 0.1 ± 0.4 points more accurate than A on average" in text
    assert "better in 2 of 4 seeds" in text and "includes zero" in text
    assert "do not show" in text
    assert not result.clear


def test_paired_with_one_or_no_common_seed():
    one = seeds.paired(by_hand({3: (0.90, 0.3, 0.9)}), by_hand({3: (0.91, 0.3, 0.9), 4: (1, 0, 1)}))
    assert one.n == 1 and one.mean_difference == pytest.approx(0.01)
    assert math.isnan(one.ci_low) and math.isnan(one.p_value) and math.isnan(one.std_difference)
    text = seeds.paired_verdict_text(one, ("A", "B"))
    assert text.startswith("Only one seed (seed 3) was trained for both models: B is 1.0 points")
    assert "may not hold for other seeds" in text
    assert not one.clear  # one seed shows no spread, whatever the difference
    none = seeds.paired(by_hand({0: (0.9, 0.3, 0.9)}), by_hand({1: (0.9, 0.3, 0.9)}))
    assert none.n == 0
    assert seeds.paired_verdict_text(none, ("A", "B")).startswith("No seed was trained for both")


def test_paired_with_identical_differences_collapses_the_interval():
    a = {s: (0.5, 0.3, 0.9) for s in range(3)}
    b = {s: (0.75, 0.3, 0.9) for s in range(3)}  # exactly +0.25 on every seed
    result = seeds.paired(by_hand(a), by_hand(b))
    assert result.ci_low == result.ci_high == 0.25 and result.std_difference == 0
    assert result.p_value == 0.0  # scipy: an infinite t statistic
    loss = result.table.loc["loss"]  # zero difference everywhere: no test possible
    assert loss["mean"] == 0 and math.isnan(loss["p_value"]) and loss["ties"] == 3
    text = seeds.paired_verdict_text(result, ("A", "B"))
    assert "B is 25.0 ± 0.0 points more accurate than A" in text and "p < 0.001" in text


# --- curves -----------------------------------------------------------------------------------


def history(*rows):
    return [
        {"epoch": e, "loss": lo, "accuracy": ac, "test_loss": tl, "test_accuracy": ta, "seconds": 1}
        for e, lo, ac, tl, ta in rows
    ]


def test_curves_mean_and_std_per_epoch():
    runs = [
        fake_run(
            "baseline", 0, history=history((1, 0.6, 0.8, 0.5, 0.82), (2, 0.4, 0.85, 0.45, 0.84))
        ),
        fake_run(
            "baseline", 1, history=history((1, 0.5, 0.81, 0.52, 0.80), (2, 0.3, 0.88, 0.40, 0.86))
        ),
        fake_run("baseline", 2, history=history((1, 0.7, 0.79, 0.55, 0.81))),  # stopped early
    ]
    frame = seeds.curves(runs)
    assert list(frame.index) == [1, 2] and frame["n"].tolist() == [3, 2]
    columns = {"loss": 1, "accuracy": 2, "test_loss": 3, "test_accuracy": 4}
    for metric, position in columns.items():
        for epoch in (1, 2):
            values = [
                [r[position] for r in rows if r[0] == epoch]
                for rows in (
                    [(1, 0.6, 0.8, 0.5, 0.82), (2, 0.4, 0.85, 0.45, 0.84)],
                    [(1, 0.5, 0.81, 0.52, 0.80), (2, 0.3, 0.88, 0.40, 0.86)],
                    [(1, 0.7, 0.79, 0.55, 0.81)],
                )
            ]
            flat = [v for vs in values for v in vs]
            assert frame.loc[epoch, f"{metric}_mean"] == pytest.approx(statistics.mean(flat))
            assert frame.loc[epoch, f"{metric}_std"] == pytest.approx(statistics.stdev(flat))


def test_curves_of_one_run_have_no_std():
    frame = seeds.curves([fake_run("baseline", 0, history=history((1, 0.6, 0.8, 0.5, 0.82)))])
    assert frame.loc[1, "accuracy_mean"] == 0.8 and math.isnan(frame.loc[1, "accuracy_std"])
    with pytest.raises(ValueError, match="at least one"):
        seeds.curves([])


# --- collect on an artifacts folder -----------------------------------------------------------


def write_run(root, model, run_id, seed, follows_report=True, errors=3) -> np.ndarray:
    n = 40
    y_true, y_prob = make_predictions(n, errors, seed)
    with artifacts.RunWriter(model, run_id, root) as writer:
        writer.file(artifacts.MODEL_FILE).write_bytes(b"not a real model; never loaded here")
        epochs = history((1, 0.5, 0.8, 0.4, 0.85))
        writer.save_history(epochs)
        writer.file(artifacts.LIVE_LOG).write_text("")
        writer.save_predictions(y_true, y_prob)
        trained = seedtools.history(np.random.default_rng(seed))[: 10 if follows_report else 1]
        test = {"n": n, "accuracy": 0.0, "loss": 0.0}
        writer.commit(
            seedtools.manifest(model, run_id, seed, trained, test, quick=not follows_report)
        )
    return y_prob


@pytest.fixture
def sweep_root(tmp_path):
    root = tmp_path / "artifacts"
    write_run(root, "baseline", "20260101-000000-seed0-aaaa", 0)  # older, but the default
    write_run(root, "baseline", "20260102-000000-seed0-bbbb", 0)
    write_run(root, "baseline", "20260101-000000-seed1-cccc", 1)
    write_run(root, "baseline", "20260103-000000-seed1-dddd", 1, errors=5)  # newest of seed 1
    write_run(root, "baseline", "20260104-000000-seed2-eeee", 2, follows_report=False)
    write_run(root, "baseline", "20260105-000000-seed3-ffff", 3)
    artifacts.set_default("baseline", "20260101-000000-seed0-aaaa", root)
    damaged = root / "baseline" / "20260105-000000-seed3-ffff" / artifacts.LIVE_LOG
    damaged.write_text("tampered\n")  # seed 3's only run no longer verifies
    return root


def test_collect_picks_default_then_newest_and_skips_damaged(sweep_root):
    found = seeds.collect(sweep_root)
    assert set(found) == {"baseline", "residual"} and found["residual"] == {}
    chosen = {seed: info.run_id for seed, info in found["baseline"].items()}
    assert chosen == {0: "20260101-000000-seed0-aaaa", 1: "20260103-000000-seed1-dddd"}
    everything = seeds.collect(sweep_root, models=["baseline"], report_only=False)
    chosen = {seed: info.run_id for seed, info in everything["baseline"].items()}
    assert chosen == {
        0: "20260101-000000-seed0-aaaa",
        1: "20260103-000000-seed1-dddd",
        2: "20260104-000000-seed2-eeee",
    }
    assert list(everything["baseline"]) == [0, 1, 2]  # sorted by seed


def test_load_seed_runs_and_summarize_them(sweep_root):
    found = seeds.collect(sweep_root, models=["baseline"])
    runs = seeds.load_seed_runs(found["baseline"])
    assert {s: r.run_id for s, r in runs.items()} == {
        s: info.run_id for s, info in found["baseline"].items()
    }
    _, expected_prob = make_predictions(40, 5, 1)
    np.testing.assert_array_equal(runs[1].y_prob, expected_prob)
    summary = seeds.summarize(runs)
    assert summary.per_seed["accuracy"].tolist() == pytest.approx([37 / 40, 35 / 40])
    assert summary.std("accuracy") == pytest.approx(statistics.stdev([37 / 40, 35 / 40]))


# --- tables and sentences, on the seed sweep of tests/seedtools.py ------------------------------

NAMES = {model: REGISTRY[model].display_name for model in MODEL_NAMES}
COMMAND = "python -m core.train --model all --seeds 0-9"


@pytest.fixture(scope="module")
def expected(seed_root) -> dict[str, dict[int, dict]]:
    return seedtools.expected_seed_metrics(seed_root)


@pytest.fixture(scope="module")
def summaries(seed_root) -> dict[str, SeedSummary]:
    return seeds.summarize_collected(seeds.collect(seed_root))


def mean_std(text: str) -> tuple[float, float]:
    mean, std = text.split(" ± ")
    return float(mean), float(std)


def check_mean_std(text: str, values: list[float]) -> None:
    mean, std = mean_std(text)
    assert mean == pytest.approx(statistics.mean(values), abs=5.1e-5)  # shown to 4 decimals
    assert std == pytest.approx(statistics.stdev(values), abs=5.1e-5)


def test_seed_table_is_the_mean_and_std_of_the_report_seeds(summaries, expected):
    table = seeds.seed_table(summaries)
    assert list(table.index) == [NAMES[m] for m in MODEL_NAMES]
    for model in MODEL_NAMES:
        row = table.loc[NAMES[model]]
        for metric, column in (("accuracy", "Test accuracy"), ("loss", "Test loss"),
                               ("macro_f1", "Macro F1")):  # fmt: skip
            check_mean_std(row[column], [expected[model][s][metric] for s in SEEDS])
        assert row["Seeds"] == "3 (0, 1, 2)"  # the quick runs are left out


def test_class_f1_table_across_seeds(summaries, expected):
    table = seeds.class_f1_table(summaries)
    assert list(table.index) == list(CLASS_NAMES) and table.index.name == "class"
    for model in MODEL_NAMES:
        for k, class_name in enumerate(table.index):
            values = [float(expected[model][s]["class_f1"][k]) for s in SEEDS]
            check_mean_std(table.loc[class_name, f"{NAMES[model]} F1"], values)


def test_one_seed_in_the_tables_has_no_spread(seed_root, expected):
    first = {0: seeds.collect(seed_root)["baseline"][0]}
    one = {"baseline": seeds.summarize(seeds.load_seed_runs(first))}
    (row,) = seeds.seed_table(one).to_dict(orient="records")
    accuracy = expected["baseline"][0]["accuracy"]
    assert row["Test accuracy"] == f"{accuracy:.4f} (one seed)" and row["Seeds"] == "1 (0)"
    assert seeds.class_f1_table(one)[f"{NAMES['baseline']} F1"].str.endswith(" (one seed)").all()


def test_paired_verdict_on_the_sweep_is_clear(summaries, expected):
    diffs = [expected["residual"][s]["accuracy"] - expected["baseline"][s]["accuracy"]
             for s in SEEDS]  # fmt: skip
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    assert mean - half > 0  # the sweep was built so that the residual wins beyond the spread
    seed_verdict = (
        f"Across 3 seeds, {NAMES['residual']} is {mean * 100:.1f} ± {sd * 100:.1f} points more "
        f"accurate than {NAMES['baseline']} (paired by seed, 95% CI {(mean - half) * 100:.1f} "
        f"to {(mean + half) * 100:.1f} points; better in 3 of 3 seeds; "
    )
    verdict = seeds.paired_verdict(summaries)
    assert verdict.text.startswith(seed_verdict), verdict.text
    assert verdict.clear


def test_paired_verdict_without_one_model(summaries):
    text, clear = seeds.paired_verdict({"baseline": summaries["baseline"]})
    assert text == (
        f"No seed of the report's protocol was trained for {NAMES['residual']}, so the models "
        "cannot be compared seed by seed."
    )
    assert not clear


def test_more_seeds_text_says_how_many_and_how_to_get_more(seed_root):
    collected = seeds.collect(seed_root)
    assert seeds.has_spread(collected)
    one = {model: dict(list(infos.items())[:1]) for model, infos in collected.items()}
    assert not seeds.has_spread(one)
    line = seeds.more_seeds_text(one)
    assert line.startswith("Across seeds: Only one seed per model follows the report's protocol")
    assert COMMAND in line and seeds.SEEDS_COMMAND == COMMAND
    none = {model: {} for model in collected}
    assert not seeds.has_spread(none)
    assert seeds.more_seeds_text(none).startswith("Across seeds: No run follows")
