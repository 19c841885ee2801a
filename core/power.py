"""How many seeds would settle it: the power of the paired-by-seed t-test of accuracy.

From the observed per-seed differences (mean ``d``, sample std ``s``, ``n`` pairs): how many
seeds per model a two-sided paired t-test would need to detect a true difference of ``d`` with
80% power at the 5% level, and the smallest difference the current ``n`` seeds can detect so.
The power is exact, from the noncentral t distribution (df ``n − 1``, noncentrality
``d / (s / √n)``), taking the observed ``s`` as the true spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from core.models import MODEL_NAMES, display_name
from core.seeds import SeedSummary, paired

ALPHA = 0.05  # the level of the verdict's paired t-test (its 95% interval)
POWER = 0.80
MAX_SEEDS = 1000  # the search for the seeds needed stops here


def paired_power(difference: float, std: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test on ``n`` pairs whose differences have mean
    ``difference`` and standard deviation ``std``: P(|T| > t_crit) under the noncentral t."""
    _check(std, n, alpha)
    return float(_power(difference / std * math.sqrt(n), n - 1, alpha))


def _check(std: float, n: int, alpha: float) -> None:
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n}")
    if not std > 0:  # also NaN
        raise ValueError(f"the standard deviation must be positive, got {std}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")


def _power(noncentrality, df, alpha: float):
    critical = stats.t.ppf(1 - alpha / 2, df)
    # P(T < -t) as P(T > t) at -noncentrality: scipy's nct.cdf gives NaN far in that tail.
    return stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality)


def seeds_needed(
    difference: float,
    std: float,
    alpha: float = ALPHA,
    power: float = POWER,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """The fewest pairs (from 2) at which the paired t-test reaches ``power`` against a true
    ``difference``; None if more than ``max_seeds`` would be needed."""
    _check(std, 2, alpha)
    n = np.arange(2, max_seeds + 1)  # (max_seeds - 1,)
    reached = _power(abs(difference) / std * np.sqrt(n), n - 1, alpha) >= power
    return int(n[reached.argmax()]) if reached.any() else None


def detectable_difference(std: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference (same unit as ``std``) that ``n`` pairs detect with
    ``power``: the noncentrality at which the power is reached, times ``std / √n``."""
    _check(std, n, alpha)
    if not alpha < power < 1:
        raise ValueError(f"power must lie between alpha and 1, got {power}")
    high = 1.0
    while _power(high, n - 1, alpha) < power:  # the power at 0 is alpha, below the target
        high *= 2
    noncentrality = optimize.brentq(lambda nc: _power(nc, n - 1, alpha) - power, 0.0, high)
    return float(noncentrality * std / math.sqrt(n))


@dataclass(frozen=True)
class PowerAnalysis:
    """What the observed differences say about the seeds needed (units of the differences).

    ``seeds_needed`` is None where no count answers: fewer than two pairs or no spread (nothing
    to size the test by), no difference observed, or more than ``max_seeds``. ``detectable`` and
    ``power_now`` (the current seeds' power against ``difference``) are NaN without a spread.
    """

    difference: float
    std: float
    n: int
    seeds_needed: int | None
    detectable: float
    power_now: float
    alpha: float = ALPHA
    power: float = POWER
    max_seeds: int = MAX_SEEDS

    @property
    def has_spread(self) -> bool:
        return self.n >= 2 and self.std > 0

    @property
    def no_difference(self) -> bool:
        # A mean of differences that are multiples of 1/10,000 is zero up to rounding.
        return math.isclose(self.difference, 0.0, abs_tol=1e-12)

    @property
    def beyond_max(self) -> bool:
        return self.has_spread and not self.no_difference and self.seeds_needed is None


def power_analysis(
    difference: float,
    std: float,
    n: int,
    alpha: float = ALPHA,
    power: float = POWER,
    max_seeds: int = MAX_SEEDS,
) -> PowerAnalysis:
    """Seeds needed to detect ``difference`` and what ``n`` seeds can detect, at the observed
    ``std`` (sample std, ddof=1, of the per-seed differences)."""
    if n < 2 or not std > 0:
        return PowerAnalysis(difference, std, n, None, math.nan, math.nan, alpha, power, max_seeds)
    return PowerAnalysis(
        difference,
        std,
        n,
        seeds_needed(difference, std, alpha, power, max_seeds),  # None for no difference
        detectable_difference(std, n, alpha, power),
        paired_power(difference, std, n, alpha),
        alpha,
        power,
        max_seeds,
    )


def _signed_points(value: float) -> str:
    return f"{value:+.2f}" if abs(value) >= 0.005 else f"{value:+.1g}"


def power_text(analysis: PowerAnalysis, names: Sequence[str]) -> str:
    """One sentence: the seeds per model needed, and what the current seeds can detect, in
    accuracy points; ``names`` = (A, B) labels, the difference being B − A."""
    name_a, name_b = names
    n = analysis.n
    level = f"{analysis.power * 100:g}% power at the {analysis.alpha * 100:g}% level"
    if n < 2:
        return (
            f"With {n} seed{'' if n == 1 else 's'} trained for both models, the seed-to-seed "
            "spread of the difference is unknown, so how many seeds would settle it cannot be "
            "estimated."
        )
    if not analysis.std > 0:
        return (
            f"The accuracy difference is the same in all {n} seeds (no seed-to-seed spread), so "
            "there is no spread to size a paired test by: how many seeds would settle it cannot "
            "be estimated."
        )
    can = f"the current {n} seeds can detect about {analysis.detectable * 100:.2f} points"
    if analysis.no_difference:
        return (
            'The observed mean difference is 0, and a difference of 0 cannot be "detected"; '
            f"with {level}, a paired t-test on {can}."
        )
    need = (
        f"more than {analysis.max_seeds} seeds"
        if analysis.seeds_needed is None
        else f"about {analysis.seeds_needed} seeds"
    )
    return (
        f"To detect a difference of {_signed_points(analysis.difference * 100)} points "
        f"({name_b} − {name_a}, as observed) with {level}, a paired t-test needs {need} per "
        f"model; {can}."
    )


def seed_power_text(summaries: Mapping[str, SeedSummary], pair: Sequence[str] | None = None) -> str:
    """``power_text`` for the pair of the paired-by-seed verdict (``seeds.paired_verdict``;
    default: the registry's first two models); a model without seeds pairs no seed."""
    a, b = MODEL_NAMES[:2] if pair is None else pair
    if a in summaries and b in summaries:
        result = paired(summaries[a], summaries[b])
        analysis = power_analysis(result.mean_difference, result.std_difference, result.n)
    else:
        analysis = power_analysis(math.nan, math.nan, 0)
    return power_text(analysis, (display_name(a), display_name(b)))
