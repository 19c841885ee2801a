"""core.power: the seeds a paired t-test of accuracy needs, checked against simulated paired
t-tests (scipy.stats.ttest_rel on seeded normal samples) and published sample sizes."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from core import power, seeds
from core.models import MODEL_NAMES, REGISTRY
from tests import seedtools
from tests.seedtools import SEEDS

NAMES = tuple(REGISTRY[model].display_name for model in MODEL_NAMES)
SIMULATIONS = 20_000


def simulated_power(difference: float, std: float, n: int, seed: int) -> float:
    """The share of SIMULATIONS paired t-tests (two-sided, 5%) on n seeds that reject, where
    the model B − model A accuracy differences are normal with the given mean and std."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0.90, 0.006, (SIMULATIONS, n))  # (simulations, seeds): model A per seed
    b = a + rng.normal(difference, std, (SIMULATIONS, n))
    return float(np.mean(stats.ttest_rel(b, a, axis=1).pvalue < 0.05))


@pytest.mark.parametrize(
    ("difference", "std"),
    [(0.0059, 0.0081), (0.006, 0.007), (-0.004, 0.006), (0.002, 0.0012)],
)
def test_seeds_needed_is_the_first_n_with_80_percent_power(difference, std):
    n = power.seeds_needed(difference, std)
    assert n is not None and n >= 2
    assert power.paired_power(difference, std, n) >= 0.8
    if n > 2:
        assert power.paired_power(difference, std, n - 1) < 0.8
    for k in (n - 1, n) if n > 2 else (n,):
        analytic = power.paired_power(difference, std, k)
        assert simulated_power(difference, std, k, seed=k) == pytest.approx(analytic, abs=0.01)


@pytest.mark.parametrize("n", [2, 3, 6, 20])
def test_detectable_difference_has_80_percent_power(n):
    std = 0.007
    detectable = power.detectable_difference(std, n)
    assert power.paired_power(detectable, std, n) == pytest.approx(0.8, abs=1e-9)
    assert power.paired_power(0.99 * detectable, std, n) < 0.8
    assert simulated_power(detectable, std, n, seed=100 + n) == pytest.approx(0.8, abs=0.01)
    # Fewer seeds detect only a larger difference.
    assert detectable > power.detectable_difference(std, n + 1)


@pytest.mark.parametrize(
    ("effect_size", "n"),
    # Two-sided paired t-test, alpha 0.05, power 0.8 (G*Power; Cohen's tables for one sample).
    [(0.2, 199), (0.5, 34), (0.8, 15), (1.0, 10)],
)
def test_seeds_needed_matches_published_sample_sizes(effect_size, n):
    assert power.seeds_needed(effect_size, 1.0) == n
    assert power.seeds_needed(-effect_size * 0.004, 0.004) == n  # any unit, either sign


def test_two_seeds_far_in_the_tail_are_finite():
    # At one degree of freedom scipy's nct.cdf is NaN around noncentrality 8.
    analytic = power.paired_power(8 / math.sqrt(2), 1.0, 2)
    assert math.isfinite(analytic)
    assert simulated_power(8 / math.sqrt(2), 1.0, 2, seed=2) == pytest.approx(analytic, abs=0.01)


def test_power_at_no_difference_is_the_level():
    assert power.paired_power(0.0, 0.01, 7) == pytest.approx(0.05, abs=1e-12)
    assert power.paired_power(0.0, 0.01, 7, alpha=0.1) == pytest.approx(0.1, abs=1e-12)


def test_usual_case_sentence():
    analysis = power.power_analysis(0.0059, 0.0081, 6)
    n, detectable = analysis.seeds_needed, analysis.detectable
    assert n == power.seeds_needed(0.0059, 0.0081) and n > 6
    assert analysis.power_now == pytest.approx(power.paired_power(0.0059, 0.0081, 6))
    assert analysis.power_now < 0.8 and detectable > 0.0059
    assert power.power_text(analysis, NAMES) == (
        f"To detect a difference of +0.59 points ({NAMES[1]} − {NAMES[0]}, as observed) with "
        f"80% power at the 5% level, a paired t-test needs about {n} seeds per model; the "
        f"current 6 seeds can detect about {detectable * 100:.2f} points."
    )


def test_more_than_the_cap():
    analysis = power.power_analysis(0.0003, 0.01, 5)
    assert analysis.seeds_needed is None and analysis.beyond_max
    assert power.seeds_needed(0.0003, 0.01, max_seeds=20_000) > 1000
    text = power.power_text(analysis, NAMES)
    assert "a paired t-test needs more than 1000 seeds per model" in text
    assert "+0.03 points" in text
    assert f"can detect about {analysis.detectable * 100:.2f} points." in text
    small = power.power_analysis(-0.00002, 0.01, 5)
    assert "a difference of -0.002 points" in power.power_text(small, NAMES)


def test_no_difference_cannot_be_detected_but_the_detectable_one_is_given():
    analysis = power.power_analysis(0.0, 0.005, 4)
    assert analysis.no_difference and not analysis.beyond_max
    assert analysis.seeds_needed is None
    assert analysis.power_now == pytest.approx(0.05)
    assert analysis.detectable == pytest.approx(power.detectable_difference(0.005, 4))
    text = power.power_text(analysis, NAMES)
    assert text == (
        'The observed mean difference is 0, and a difference of 0 cannot be "detected"; with 80% '
        "power at the 5% level, a paired t-test on the current 4 seeds can detect about "
        f"{analysis.detectable * 100:.2f} points."
    )
    # Per-seed differences that cancel out leave a mean that is 0 only up to rounding.
    diffs = np.array([0.9012, 0.8988, 0.9]) - 0.9
    assert power.power_analysis(float(diffs.mean()), float(diffs.std(ddof=1)), 3).no_difference


@pytest.mark.parametrize("difference", [0.003, 0.0])
def test_no_spread_is_said(difference):
    analysis = power.power_analysis(difference, 0.0, 5)
    assert analysis.seeds_needed is None and math.isnan(analysis.detectable)
    assert not analysis.has_spread and not analysis.beyond_max
    assert power.power_text(analysis, NAMES).startswith(
        "The accuracy difference is the same in all 5 seeds (no seed-to-seed spread)"
    )


@pytest.mark.parametrize(("n", "seeds_word"), [(1, "1 seed"), (0, "0 seeds")])
def test_fewer_than_two_seeds_is_said(n, seeds_word):
    analysis = power.power_analysis(0.004 if n else math.nan, math.nan, n)
    assert analysis.seeds_needed is None and math.isnan(analysis.detectable)
    assert power.power_text(analysis, NAMES) == (
        f"With {seeds_word} trained for both models, the seed-to-seed spread of the difference is "
        "unknown, so how many seeds would settle it cannot be estimated."
    )


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"):
        power.paired_power(0.01, 0.01, 1)
    with pytest.raises(ValueError, match=r"standard deviation must be positive, got 0\.0"):
        power.seeds_needed(0.01, 0.0)
    with pytest.raises(ValueError, match="standard deviation must be positive, got nan"):
        power.detectable_difference(math.nan, 5)
    with pytest.raises(ValueError, match=r"alpha must lie strictly between 0 and 1, got 1\.5"):
        power.paired_power(0.01, 0.01, 5, alpha=1.5)
    with pytest.raises(ValueError, match=r"power must lie between alpha and 1, got 0\.01"):
        power.detectable_difference(0.01, 5, power=0.01)


# --- on a seed sweep --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def summaries(seed_root) -> dict[str, seeds.SeedSummary]:
    return seeds.summarize_collected(seeds.collect(seed_root))


def test_seed_power_text_on_the_sweep(seed_root, summaries):
    expected = seedtools.expected_seed_metrics(seed_root)
    baseline, residual = MODEL_NAMES[:2]
    diffs = [expected[residual][s]["accuracy"] - expected[baseline][s]["accuracy"] for s in SEEDS]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    analysis = power.power_analysis(mean, sd, len(SEEDS))
    text = power.seed_power_text(summaries)
    assert text == power.power_text(analysis, NAMES)
    assert f"the current {len(SEEDS)} seeds can detect about" in text


def test_seed_power_text_without_one_model(summaries):
    text = power.seed_power_text({MODEL_NAMES[0]: summaries[MODEL_NAMES[0]]})
    assert text.startswith("With 0 seeds trained for both models")
