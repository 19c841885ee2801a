"""Several seeds per model: which runs to use, their spread, a comparison paired by seed, and
the tables and sentences that show them.

Runs of a seed sweep (``python -m core.train --model all --seeds 0-9``) differ only in
``manifest.protocol.seed``. Everything here is computed from each run's stored test
predictions with ``core.metrics`` (never read back from the manifest), with numpy, pandas and
scipy; no TensorFlow. Each run's metrics and the verdicts over seeds are computed once and
kept (``core.runcache``, keyed on the runs' checksums): a cold Overview reads small files and
imports no SciPy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from core import artifacts, runcache
from core.artifacts import Run, RunInfo
from core.data import CLASS_NAMES, NUM_CLASSES
from core.metrics import Evaluation, evaluate
from core.models import MODEL_NAMES, display_name
from core.text import Rows, rows_frame

if TYPE_CHECKING:
    import pandas as pd

SEED_METRICS = ("accuracy", "loss", "macro_f1")
HIGHER_IS_BETTER = {"accuracy": True, "loss": False, "macro_f1": True}
HISTORY_METRICS = ("loss", "accuracy", "test_loss", "test_accuracy")
CONFIDENCE = 0.95
ONE_SEED_NOTE = "Only one seed: its spread cannot be estimated (standard deviation undefined)."
SEEDS_COMMAND = "python -m core.train --model all --seeds 0-9"
SEED_COLUMNS = {"accuracy": "Test accuracy", "loss": "Test loss", "macro_f1": "Macro F1"}
# The two verdicts the Overview states, and what each is about.
CHOSEN_RUNS_NOTE = (
    "**The chosen runs** (one per model, picked in the sidebar), scored on the same 10,000 "
    "test images: could the difference between them be chance on these images?"
)
ACROSS_SEEDS_NOTE = (
    "**Across seeds**: every seed of the report's protocol trained for both models, the models "
    "paired by seed: does the difference hold from one random start of training to the next?"
)

Collected = dict[str, dict[int, RunInfo]]


# --- which runs -------------------------------------------------------------------------------


def _seed_of(info: RunInfo) -> int | None:
    return info.manifest.protocol.seed if info.manifest is not None else None


def collect(
    root: Path | str | None = None,
    models: Iterable[str] = MODEL_NAMES,
    report_only: bool = True,
) -> Collected:
    """Per model, per seed, one intact run (sorted by seed; a model without runs maps to {}).

    ``report_only`` keeps only runs that follow the report's protocol. Where a seed has several
    runs, the model's default run wins, else the newest (``list_runs`` lists newest first).
    """
    collected: Collected = {}
    for model in models:
        chosen: dict[int, RunInfo] = {}
        for info in artifacts.list_runs(model, root):  # newest first
            if not info.ok:
                continue
            if report_only and not info.manifest.protocol.follows_report:
                continue
            seed = _seed_of(info)
            if seed is None:
                continue
            if seed not in chosen or (info.is_default and not chosen[seed].is_default):
                chosen[seed] = info
        collected[model] = dict(sorted(chosen.items()))
    return collected


def load_seed_runs(infos: Mapping[int, RunInfo]) -> dict[int, Run]:
    """Load (and verify again) the runs ``collect`` chose for one model, keyed by seed."""
    return {
        seed: artifacts.load_run(info.model, info.run_id, root=info.path.parent.parent)
        for seed, info in infos.items()
    }


def has_spread(collected: Collected) -> bool:
    """Whether some model has two or more seeds, so that a spread can be shown."""
    return any(len(infos) >= 2 for infos in collected.values())


def more_seeds_text(collected: Collected) -> str:
    """One line: how many seeds of the report's protocol there are, and how to get more."""
    most = max((len(infos) for infos in collected.values()), default=0)
    have = "No run follows" if most == 0 else "Only one seed per model follows"
    return (
        f"Across seeds: {have} the report's protocol yet, so how much the results vary from one "
        f"random seed to the next is unknown. Train more with `{SEEDS_COMMAND}` "
        "(seeds already trained are skipped)."
    )


# --- one model over seeds ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SeedSummary:
    """Test metrics of one model's runs, one row per seed, with their mean and spread.

    Held as arrays (the Overview reads them without pandas); the DataFrames are built on first
    use. Means skip missing values (NaN), as pandas does; the standard deviation is ddof=1,
    NaN for fewer than two values.
    """

    model: str
    seeds: tuple[int, ...]
    values: np.ndarray  # (seeds, 3): SEED_METRICS of each seed
    class_values: np.ndarray  # (seeds, 10): F1 of each class (CLASS_NAMES) for each seed

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def note(self) -> str | None:
        """Why no spread is shown (one seed), or None."""
        return ONE_SEED_NOTE if self.n < 2 else None

    def mean(self, metric: str) -> float:
        return _mean_std_n(self.values[:, SEED_METRICS.index(metric)])[0]

    def std(self, metric: str) -> float:
        return _mean_std_n(self.values[:, SEED_METRICS.index(metric)])[1]

    def class_mean_std(self, name: str) -> tuple[float, float]:
        """Mean and standard deviation over seeds of class ``name``'s F1."""
        return _mean_std_n(self.class_values[:, CLASS_NAMES.index(name)])[:2]

    @cached_property
    def per_seed(self) -> pd.DataFrame:
        """Index seed; columns SEED_METRICS."""
        return _frame(self.values, self.seeds, SEED_METRICS)

    @cached_property
    def per_class_f1(self) -> pd.DataFrame:
        """Index seed; columns CLASS_NAMES."""
        return _frame(self.class_values, self.seeds, CLASS_NAMES)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Index SEED_METRICS ("metric"); columns mean, std, n."""
        return _mean_std(self.values, SEED_METRICS, "metric")

    @cached_property
    def class_summary(self) -> pd.DataFrame:
        """Index CLASS_NAMES ("class"); columns mean, std, n."""
        return _mean_std(self.class_values, CLASS_NAMES, "class")


def _mean_std_n(column: np.ndarray) -> tuple[float, float, int]:
    # ddof=1: the seeds are a sample of the seeds one could have drawn; NaN for a single seed.
    present = column[~np.isnan(column)]
    n = int(present.size)
    mean = float(present.mean()) if n else math.nan
    std = float(present.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def _frame(values: np.ndarray, seeds: Sequence[int], columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    index = pd.Index([int(s) for s in seeds], name="seed", dtype="int64")
    return pd.DataFrame(np.asarray(values, float).reshape(len(seeds), len(columns)),
                        index=index, columns=list(columns))  # fmt: skip


def _mean_std(values: np.ndarray, names: Sequence[str], index_name: str) -> pd.DataFrame:
    import pandas as pd

    values = np.asarray(values, float).reshape(-1, len(names))
    stats = [_mean_std_n(values[:, j]) for j in range(len(names))]
    return pd.DataFrame(
        {
            "mean": [m for m, _, _ in stats],
            "std": [s for _, s, _ in stats],
            "n": np.array([n for _, _, n in stats], np.int64),
        },
        index=pd.Index(list(names), name=index_name),
    )


def summarize(runs_by_seed: Mapping[int, Run]) -> SeedSummary:
    """Accuracy, log loss, macro F1 and per-class F1 of each seed's run, and mean ± std."""
    if not runs_by_seed:
        raise ValueError("no runs to summarize: need at least one seed")
    models = {run.model for run in runs_by_seed.values()}
    if len(models) != 1:
        raise ValueError(f"runs of one model expected, got {sorted(models)}")
    evaluations = {seed: evaluate(run.y_true, run.y_prob) for seed, run in runs_by_seed.items()}
    return summarize_evaluations(models.pop(), evaluations)


def summarize_kept(infos: Mapping[int, RunInfo]) -> SeedSummary:
    """``summarize`` of the runs ``collect`` chose for one model, from each run's kept
    evaluation (``runcache.evaluation``): only a run without one is loaded and scored."""
    if not infos:
        raise ValueError("no runs to summarize: need at least one seed")
    models = {info.model for info in infos.values()}
    if len(models) != 1:
        raise ValueError(f"runs of one model expected, got {sorted(models)}")
    evaluations = {}
    for seed, info in infos.items():
        kept = runcache.stored_evaluation(info)
        if kept is None:
            run = artifacts.load_run(info.model, info.run_id, root=info.path.parent.parent)
            kept = runcache.evaluation(run)
        evaluations[seed] = kept
    return summarize_evaluations(models.pop(), evaluations)


def kept_summaries(collected: Collected, root: Path | str) -> dict[str, SeedSummary]:
    """``summarize_kept`` of every model with a seed, read from one file under ``root``
    (``runcache.results_file``) keyed on every run's test-prediction checksum: a cold start
    reads it instead of each run's evaluation."""
    models = [model for model, infos in collected.items() if infos]
    key = {
        "runs": {
            model: {str(seed): runcache.predictions_key(info) for seed, info in infos.items()}
            for model, infos in collected.items()
            if infos
        },
        "format": runcache.RESULTS_FORMAT,
    }
    path = runcache.results_file(root, "seed-summaries.npz")
    found = runcache.read(path, {"key": key})
    if found is not None and all(f"{m}__seeds" in found for m in models):
        try:
            return {model: _summary_from(model, found) for model in models}
        except (KeyError, ValueError):
            pass  # a file of another layout under the same key: computed again
    summaries = {model: summarize_kept(collected[model]) for model in models}
    arrays = {}
    for model, summary in summaries.items():
        arrays[f"{model}__seeds"] = np.array(summary.seeds, np.int64)
        arrays[f"{model}__per_seed"] = np.asarray(summary.values, float)
        arrays[f"{model}__per_class"] = np.asarray(summary.class_values, float)
    runcache.write(path, {"key": key}, arrays)
    return summaries


def _summary_from(model: str, found: Mapping[str, np.ndarray]) -> SeedSummary:
    seeds = tuple(int(s) for s in found[f"{model}__seeds"])
    values = np.asarray(found[f"{model}__per_seed"], float)
    class_values = np.asarray(found[f"{model}__per_class"], float)
    if values.shape != (len(seeds), len(SEED_METRICS)) or class_values.shape != (
        len(seeds), NUM_CLASSES
    ):  # fmt: skip
        raise ValueError("seed summaries of another layout")
    return SeedSummary(model, seeds, values, class_values)


def summarize_evaluations(model: str, evaluations: Mapping[int, Evaluation]) -> SeedSummary:
    """``summarize`` from each seed's ``metrics.Evaluation`` of ``model``."""
    if not evaluations:
        raise ValueError("no runs to summarize: need at least one seed")
    seeds = tuple(sorted(int(seed) for seed in evaluations))
    by_seed = {int(seed): ev for seed, ev in evaluations.items()}
    values = np.array(
        [[by_seed[s].accuracy, by_seed[s].loss, by_seed[s].macro_f1] for s in seeds], float
    )
    class_values = np.array([[by_seed[s].f1(name) for name in CLASS_NAMES] for s in seeds], float)
    return SeedSummary(model, seeds, values, class_values)


def summarize_collected(collected: Collected) -> dict[str, SeedSummary]:
    """``summarize`` of every model that ``collect`` found at least one seed for."""
    return {model: summarize(load_seed_runs(infos)) for model, infos in collected.items() if infos}


def _mean_std_text(mean: float, std: float) -> str:
    return f"{mean:.4f} (one seed)" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def seed_rows(summaries: Mapping[str, SeedSummary]) -> Rows:
    """One row per model: mean ± std (ddof=1) over seeds of each test metric, and the seeds."""
    rows = [
        [
            display_name(model),
            *(_mean_std_text(s.mean(metric), s.std(metric)) for metric in SEED_COLUMNS),
            f"{s.n} ({', '.join(str(seed) for seed in s.seeds)})",
        ]
        for model, s in summaries.items()
    ]
    return ["", *SEED_COLUMNS.values(), "Seeds"], rows


def class_f1_rows(summaries: Mapping[str, SeedSummary]) -> Rows:
    """One row per class: each model's F1, mean ± std over its seeds."""
    header = ["class", *(f"{display_name(model)} F1" for model in summaries)]
    rows = [
        [name, *(_mean_std_text(*s.class_mean_std(name)) for s in summaries.values())]
        for name in CLASS_NAMES
    ]
    return header, rows


def seed_table(summaries: Mapping[str, SeedSummary]) -> pd.DataFrame:
    """``seed_rows`` as a DataFrame indexed by model."""
    return rows_frame(seed_rows(summaries))


def class_f1_table(summaries: Mapping[str, SeedSummary]) -> pd.DataFrame:
    """``class_f1_rows`` as a DataFrame indexed by class."""
    return rows_frame(class_f1_rows(summaries))


# --- two models, paired by seed ---------------------------------------------------------------


@dataclass(frozen=True)
class PairedResult:
    """B minus A per seed both were trained with, and what the differences say.

    ``table`` (index SEED_METRICS) holds, per metric: ``mean`` and ``std`` of the per-seed
    differences, the t-interval ``ci_low``..``ci_high`` of the mean, the paired t-test
    ``p_value``, ``b_better`` (seeds where B is better: higher accuracy and F1, lower loss),
    ``ties`` and ``n``. Interval and p are NaN for fewer than two seeds.
    """

    seeds: tuple[int, ...]
    differences: pd.DataFrame  # index seed; columns SEED_METRICS; b - a
    table: pd.DataFrame
    confidence: float = CONFIDENCE

    @property
    def n(self) -> int:
        return len(self.seeds)

    def _get(self, column: str, metric: str) -> float:
        return float(self.table.loc[metric, column])

    # The accuracy difference, which the verdict is about.
    @property
    def mean_difference(self) -> float:
        return self._get("mean", "accuracy")

    @property
    def std_difference(self) -> float:
        return self._get("std", "accuracy")

    @property
    def ci_low(self) -> float:
        return self._get("ci_low", "accuracy")

    @property
    def ci_high(self) -> float:
        return self._get("ci_high", "accuracy")

    @property
    def p_value(self) -> float:
        return self._get("p_value", "accuracy")

    @property
    def b_better(self) -> int:
        return int(self.table.loc["accuracy", "b_better"])

    @property
    def a_better(self) -> int:
        return self.n - self.b_better - int(self.table.loc["accuracy", "ties"])

    @property
    def clear(self) -> bool:
        """Two or more seeds and an accuracy interval clear of zero: one model is better beyond
        the seed-to-seed spread."""
        return self.n >= 2 and (self.ci_low > 0 or self.ci_high < 0)


def _paired_stats(a: np.ndarray, b: np.ndarray, confidence: float, higher_better: bool) -> dict:
    from scipy import stats  # imported on use: a second of a cold start (verdicts are kept)

    diff = b - a  # (n,)
    n = diff.size
    mean = float(diff.mean()) if n else math.nan
    std = float(diff.std(ddof=1)) if n > 1 else math.nan
    ci_low = ci_high = p_value = math.nan
    if n > 1:
        sem = std / math.sqrt(n)
        if sem > 0:
            ci_low, ci_high = (float(v) for v in stats.t.interval(confidence, n - 1, mean, sem))
        else:  # every seed gives the same difference: the interval collapses onto it
            ci_low = ci_high = mean
        with warnings.catch_warnings():
            # Identical differences make t infinite (p = 0) or, when all are zero, undefined.
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(stats.ttest_rel(b, a).pvalue)
    better = diff > 0 if higher_better else diff < 0
    return {
        "mean": mean,
        "std": std,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": p_value,
        "b_better": int(better.sum()),
        "ties": int((diff == 0).sum()),
        "n": n,
    }


def paired(a: SeedSummary, b: SeedSummary, confidence: float = CONFIDENCE) -> PairedResult:
    """Differences b − a on the seeds both models were trained with, paired by seed."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    import pandas as pd

    seeds = sorted(set(a.seeds) & set(b.seeds))
    values_a = a.per_seed.loc[seeds, list(SEED_METRICS)]
    values_b = b.per_seed.loc[seeds, list(SEED_METRICS)]
    differences = values_b - values_a
    table = pd.DataFrame.from_dict(
        {
            metric: _paired_stats(
                values_a[metric].to_numpy(float),
                values_b[metric].to_numpy(float),
                confidence,
                HIGHER_IS_BETTER[metric],
            )
            for metric in SEED_METRICS
        },
        orient="index",
    )
    table.index.name = "metric"
    return PairedResult(tuple(int(s) for s in seeds), differences, table, confidence)


def _p_text(p: float) -> str:
    if math.isnan(p):
        return "the paired t-test is undefined (every seed gives the same difference)"
    return "paired t-test p < 0.001" if p < 0.001 else f"paired t-test p = {p:.2g}"


def paired_verdict_text(result: PairedResult, names: Sequence[str]) -> str:
    """One plain sentence on the accuracy difference across seeds; ``names`` = (A, B) labels."""
    name_a, name_b = names
    n = result.n
    if n == 0:
        return (
            f"No seed was trained for both {name_a} and {name_b}, "
            "so they cannot be compared seed by seed."
        )
    mean = result.mean_difference * 100  # points
    if n == 1:
        seed = result.seeds[0]
        if round(abs(mean), 1) == 0:
            claim = f"{name_a} and {name_b} are equally accurate on it"
        else:
            better, worse = (name_b, name_a) if mean > 0 else (name_a, name_b)
            claim = f"{better} is {abs(mean):.1f} points more accurate than {worse} on it"
        return (
            f"Only one seed (seed {seed}) was trained for both models: {claim}, but a single "
            "seed shows nothing of how much that difference varies from seed to seed, so it "
            "may not hold for other seeds."
        )
    level = f"{result.confidence * 100:g}% CI"
    low, high = result.ci_low * 100, result.ci_high * 100
    std = result.std_difference * 100
    wins_b, wins_a = result.b_better, result.a_better
    ties = n - wins_a - wins_b
    tie_text = f", {ties} tied" if ties else ""
    if mean < 0:  # state the better model first, with a positive difference
        name_a, name_b = name_b, name_a
        low, high = -high, -low
        wins_a, wins_b = wins_b, wins_a
    p = _p_text(result.p_value)
    if round(abs(mean), 1) == 0:
        return (
            f"Across {n} seeds, {name_a} and {name_b} are equally accurate on average "
            f"(difference {abs(mean):.1f} ± {std:.1f} points, paired by seed, {level} "
            f"{low:.1f} to {high:.1f} points; {name_b} better in {wins_b} of {n} seeds{tie_text}; "
            f"{p})."
        )
    claim = (
        f"Across {n} seeds, {name_b} is {abs(mean):.1f} ± {std:.1f} points more accurate than "
        f"{name_a}"
    )
    details = (
        f"paired by seed, {level} {low:.1f} to {high:.1f} points; "
        f"better in {wins_b} of {n} seeds{tie_text}; {p}"
    )
    if low <= 0:  # the interval reaches zero or below: the sign itself is uncertain
        return (
            f"{claim} on average ({details}), but the interval includes zero, so these seeds "
            "do not show that it is reliably the more accurate one."
        )
    return f"{claim} ({details})."


class Verdict(NamedTuple):
    """A paired-by-seed verdict: its sentence, and whether it is clear (``PairedResult.clear``)."""

    text: str
    clear: bool


def paired_verdict(
    summaries: Mapping[str, SeedSummary], pair: Sequence[str] | None = None
) -> Verdict:
    """The paired-by-seed verdict on ``pair`` (A, B; default: the registry's first two models),
    by their display names."""
    a, b = MODEL_NAMES[:2] if pair is None else pair
    missing = [display_name(m) for m in (a, b) if m not in summaries]
    if missing:
        return Verdict(
            f"No seed of the report's protocol was trained for {' and '.join(missing)}, so the "
            "models cannot be compared seed by seed.",
            False,
        )
    result = paired(summaries[a], summaries[b])
    return Verdict(paired_verdict_text(result, (display_name(a), display_name(b))), result.clear)


class SeedVerdicts(NamedTuple):
    """What the Overview says across seeds: the paired verdict, whether it is clear, and how
    many seeds would settle it (``core.power``)."""

    text: str
    clear: bool
    power: str


def seed_verdicts(summaries: Mapping[str, SeedSummary], pair: Sequence[str]) -> SeedVerdicts:
    """``paired_verdict`` and ``power.seed_power_text`` of ``pair`` (A, B)."""
    from core import power  # SciPy: imported only when the verdicts are not kept

    verdict = paired_verdict(summaries, pair)
    return SeedVerdicts(verdict.text, verdict.clear, power.seed_power_text(summaries, pair))


def kept_seed_verdicts(
    collected: Collected,
    summaries: Mapping[str, SeedSummary],
    pair: Sequence[str],
    root: Path | str,
) -> SeedVerdicts:
    """``seed_verdicts``, computed once per set of runs (``collect``'s) and kept under
    ``root`` (``runcache.results_file``), keyed on every run's test-prediction checksum."""
    a, b = pair
    key = {
        "pair": [a, b],
        "names": [display_name(a), display_name(b)],
        "runs": {
            model: {str(seed): runcache.predictions_key(info) for seed, info in infos.items()}
            for model, infos in collected.items()
            if model in (a, b)
        },
        "format": runcache.RESULTS_FORMAT,
    }
    path = runcache.results_file(root, f"seed-verdicts-{a}-{b}.npz")
    found = runcache.read(path, {"key": key})
    if found is not None and {"text", "clear", "power"} <= set(found):
        return SeedVerdicts(str(found["text"]), bool(found["clear"]), str(found["power"]))
    result = seed_verdicts(summaries, (a, b))
    arrays = {"text": np.array(result.text), "clear": np.array(result.clear)}
    runcache.write(path, {"key": key}, arrays | {"power": np.array(result.power)})
    return result


# --- training curves over seeds ---------------------------------------------------------------


def curves(runs: Sequence[Run]) -> pd.DataFrame:
    """Per epoch, the mean and std (ddof=1) over runs of each history metric.

    Index ``epoch``; columns ``<metric>_mean`` and ``<metric>_std`` for ``HISTORY_METRICS``,
    and ``n``, the number of runs that reached that epoch (runs may have different lengths).
    """
    import pandas as pd

    if not runs:
        raise ValueError("no runs: need at least one")
    records = [
        {"run": i, "epoch": int(r["epoch"]), **{m: r.get(m) for m in HISTORY_METRICS}}
        for i, run in enumerate(runs)
        for r in run.history
    ]
    frame = pd.DataFrame.from_records(records, columns=["run", "epoch", *HISTORY_METRICS])
    frame[list(HISTORY_METRICS)] = frame[list(HISTORY_METRICS)].astype(float)
    grouped = frame.groupby("epoch")
    result = pd.DataFrame(index=sorted(frame["epoch"].unique()))
    result.index.name = "epoch"
    for metric in HISTORY_METRICS:
        result[f"{metric}_mean"] = grouped[metric].mean()
        result[f"{metric}_std"] = grouped[metric].std(ddof=1)
    result["n"] = grouped["run"].nunique()
    return result
