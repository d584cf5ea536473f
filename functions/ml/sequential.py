"""The canary's sequential test: Wald's SPRT on the difference between the candidate and
production, one test per metric, read again every time counters grow.

Why Wald's SPRT (and not an mSPRT): the config states what the decision needs, a false
rollback rate (`alpha`), a power and a minimum effect worth a rollback, and those are the
SPRT's parameters. It stops both ways: it rolls a worse candidate back as soon as the evidence
says "worse by the minimum effect" (H1), and it promotes as soon as it says "not worse" (H0),
with a closed-form expected sample size (ASN) for either. An mSPRT (always-valid p-values over a
mixture of effects) only ever rejects "no worse": a healthy candidate could then only be
promoted when time runs out, and it has no power parameter to honour.

Each metric is a difference d (candidate minus production) whose estimate after n requests is
approximately normal with variance V (the normal approximation of both arms' means: the
score statistic of Jennison & Turnbull's group-sequential methods). With information I = 1/V
and the minimum effect theta, the log-likelihood ratio of H1 (d = theta) against H0 (d = 0) is

    llr = theta * d / V - theta**2 / (2 * V)

Wald's boundaries: rollback when llr >= log((1 - beta) / alpha), promote when
llr <= log(beta / (1 - alpha)), else continue. Reading the test at every capture object (a
batch of requests) rather than every request only adds overshoot, which lowers the error rates.

- Error rate (Bernoulli per request; errors are 5xx scoring failures): d is the difference of
  error rates and theta `canary_min_effect_error_rate` (absolute, 0.01 = one point). V is
  r(1 - r)(1/n_c + 1/n_p) at r = the pooled rate (Laplace-smoothed) + theta / 2, the midpoint
  of the two hypotheses: with few or no errors yet, the observed rate would make V tiny and
  "promote" immediately; the midpoint keeps the test honest about what it has not yet seen.
- Latency (successful requests): d is the difference of mean log-latency, theta is
  log(1 + `canary_min_effect_latency`) (0.2: a geometric mean 20 % slower). Latency is
  skewed and multiplicative, so its log is close to normal and a ratio is the effect a user
  feels; V is Welch's (each arm's sample variance over its count). A proportion above
  production's p95 was the alternative: it needs production's p95 known beforehand and tests
  only the tail.
- Accuracy on feedback labels (`canary_accuracy = true`; off by default, because labels arrive
  late and for few requests and a rollout then waits for them): the requests of the rollout
  whose true label came back through the feedback route. For a classifier, d is the difference
  of miss rates (the prediction was not the label), tested as the error rate is, with theta
  `canary_min_effect_accuracy` (absolute: 0.02 = two points of accuracy). For a regressor, d is
  the difference of mean ln|error|, tested as latency is, with theta
  ln(1 + `canary_min_effect_abs_error`) (0.2: a typical absolute error 20 % larger); an error
  below `ABS_ERROR_FLOOR` counts as that floor.

Each metric is one more chance of a false rollback: each test runs at alpha / k for the k
metrics configured (Bonferroni: 2, or 3 with accuracy), so the rollout's false-rollback rate
stays at most `canary_alpha`; each keeps the configured power.

Everything here is pure (numpy and floats), and every statistic accepts numpy arrays as well as
floats, so simulations run many rollouts at once through the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

ERROR_RATE = "error_rate"
LATENCY = "latency"
ACCURACY = "accuracy"
METRICS = (ERROR_RATE, LATENCY)
"""The metrics every rollout tests; `ACCURACY` joins them when the config asks for it."""

ABS_ERROR_FLOOR = 1e-9
"""A regressor's absolute error below this counts as this (ln 0 is not a number)."""

MIN_ARM_REQUESTS = 30
"""No metric is judged before each arm has this many observations (the normal
approximation's guard); a 100 %-failing candidate is still rolled back within a few dozen."""

LATENCY_VARIANCE_FLOOR = 1e-4
"""Smallest per-request variance of log-latency (a 1 % spread): identical timings would
otherwise make V zero."""

Outcome = Literal["rollback", "promote", "continue"]


@dataclass(frozen=True)
class Design:
    """One metric's SPRT: its share of alpha, beta (1 - power) and the minimum effect theta."""

    alpha: float
    beta: float
    effect: float

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.beta < 1 or self.alpha + self.beta >= 1:
            raise ValueError(
                f"a sequential test needs 0 < alpha, beta and alpha + beta < 1 (alpha "
                f"{self.alpha}, beta {self.beta})"
            )
        if not self.effect > 0:
            raise ValueError(f"the minimum effect must be positive, not {self.effect}")

    @property
    def upper(self) -> float:
        """Rollback at or above: log((1 - beta) / alpha)."""
        return math.log((1 - self.beta) / self.alpha)

    @property
    def lower(self) -> float:
        """Promote at or below: log(beta / (1 - alpha))."""
        return math.log(self.beta / (1 - self.alpha))

    def expected_information(self, *, worse: bool) -> float:
        """Wald's expected information (1/V) at the stop, without overshoot: under H1
        (`worse`) the llr drifts by theta**2 / 2 per unit of information, under H0 by minus
        that."""
        drift = self.effect**2 / 2
        if worse:
            return ((1 - self.beta) * self.upper + self.beta * self.lower) / drift
        return (self.alpha * self.upper + (1 - self.alpha) * self.lower) / -drift


@dataclass(frozen=True)
class Canary:
    """The rollout's tests, from `[serving]`: alpha shared by the metrics (Bonferroni)."""

    alpha: float = 0.05
    power: float = 0.8
    min_effect_error_rate: float = 0.01
    min_effect_latency: float = 0.2
    accuracy: bool = False
    """Also test accuracy on feedback labels."""
    classification: bool = True
    """The model's task: a classifier's accuracy is its miss rate, a regressor's its error."""
    min_effect_accuracy: float = 0.02
    min_effect_abs_error: float = 0.2

    @property
    def metrics(self) -> tuple[str, ...]:
        return (*METRICS, ACCURACY) if self.accuracy else METRICS

    def design(self, metric: str) -> Design:
        if metric == ERROR_RATE:
            effect = self.min_effect_error_rate
        elif metric == LATENCY:
            effect = math.log1p(self.min_effect_latency)
        elif metric == ACCURACY and self.classification:
            effect = self.min_effect_accuracy
        elif metric == ACCURACY:
            effect = math.log1p(self.min_effect_abs_error)
        else:
            raise ValueError(f"no sequential test for metric {metric!r}")
        return Design(alpha=self.alpha / len(self.metrics), beta=1 - self.power, effect=effect)


def llr(difference: np.ndarray | float, variance: np.ndarray | float, effect: float) -> np.ndarray:
    """The SPRT's log-likelihood ratio of d = effect against d = 0, for an estimate
    `difference` of variance `variance` (both may be arrays)."""
    variance = np.asarray(variance, dtype=float)
    return (effect * np.asarray(difference, dtype=float) - effect**2 / 2) / variance


def error_rate_variance(
    n_c: np.ndarray | float,
    e_c: np.ndarray | float,
    n_p: np.ndarray | float,
    e_p: np.ndarray | float,
    effect: float,
) -> np.ndarray:
    """V of the error-rate difference: r(1 - r)(1/n_c + 1/n_p), r the Laplace-smoothed pooled
    rate plus half the effect (at most 0.5)."""
    n_c, n_p = np.asarray(n_c, dtype=float), np.asarray(n_p, dtype=float)
    pooled = (np.asarray(e_c, dtype=float) + np.asarray(e_p, dtype=float) + 1) / (n_c + n_p + 2)
    rate = np.minimum(pooled + effect / 2, 0.5)
    return rate * (1 - rate) * (1 / np.maximum(n_c, 1) + 1 / np.maximum(n_p, 1))


def error_rate_llr(
    n_c: np.ndarray | float,
    e_c: np.ndarray | float,
    n_p: np.ndarray | float,
    e_p: np.ndarray | float,
    effect: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(llr, estimated difference, variance) of the error-rate test."""
    n_c_, n_p_ = np.maximum(np.asarray(n_c, dtype=float), 1), np.maximum(np.asarray(n_p, float), 1)
    difference = np.asarray(e_c, dtype=float) / n_c_ - np.asarray(e_p, dtype=float) / n_p_
    variance = error_rate_variance(n_c, e_c, n_p, e_p, effect)
    return llr(difference, variance, effect), difference, variance


def _log_variance(n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> np.ndarray:
    n1 = np.maximum(n, 2)
    sample = (squares - total**2 / np.maximum(n, 1)) / (n1 - 1)
    return np.maximum(sample, LATENCY_VARIANCE_FLOOR)


def latency_llr(
    n_c: np.ndarray | float,
    sum_c: np.ndarray | float,
    squares_c: np.ndarray | float,
    n_p: np.ndarray | float,
    sum_p: np.ndarray | float,
    squares_p: np.ndarray | float,
    effect: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(llr, estimated difference of mean log-latency, Welch variance) of the latency test,
    from each arm's count, sum and sum of squares of log(latency_ms)."""
    arms = []
    for n, total, squares in ((n_c, sum_c, squares_c), (n_p, sum_p, squares_p)):
        n_ = np.asarray(n, dtype=float)
        total_, squares_ = np.asarray(total, dtype=float), np.asarray(squares, dtype=float)
        arms.append((total_ / np.maximum(n_, 1), _log_variance(n_, total_, squares_), n_))
    (mean_c, var_c, count_c), (mean_p, var_p, count_p) = arms
    difference = mean_c - mean_p
    variance = var_c / np.maximum(count_c, 1) + var_p / np.maximum(count_p, 1)
    return llr(difference, variance, effect), difference, variance


def outcome_of(
    statistic: np.ndarray | float,
    design: Design,
    n_c: np.ndarray | float,
    n_p: np.ndarray | float,
) -> np.ndarray:
    """Per test: 1 rollback (llr at or above the upper boundary), -1 promote (at or below
    the lower), 0 continue (between, or fewer than `MIN_ARM_REQUESTS` in an arm)."""
    enough = (np.asarray(n_c) >= MIN_ARM_REQUESTS) & (np.asarray(n_p) >= MIN_ARM_REQUESTS)
    statistic = np.asarray(statistic, dtype=float)
    verdict = np.where(statistic >= design.upper, 1, np.where(statistic <= design.lower, -1, 0))
    return np.where(enough, verdict, 0)


@dataclass(frozen=True)
class Counts:
    """What one arm (production or the candidate) served during a rollout."""

    requests: int = 0
    errors: int = 0
    latency_count: int = 0
    """Successful requests with a scoring time (the latency test's observations)."""
    log_latency_sum: float = 0.0
    log_latency_sq_sum: float = 0.0
    labeled: int = 0
    """Requests whose true label came back (the accuracy test's observations)."""
    misses: int = 0
    """Of those, a classifier's predictions that were not the label."""
    log_abs_error_sum: float = 0.0
    """A regressor's sum of ln|prediction - label| over the labeled requests."""
    log_abs_error_sq_sum: float = 0.0


@dataclass(frozen=True)
class TestResult:
    """One metric's test as read now: what is recorded with the decision."""

    metric: str
    outcome: Outcome
    statistic: float
    """The log-likelihood ratio."""
    upper: float
    lower: float
    difference: float
    """Candidate minus production: error rate, mean log-latency, miss rate or mean ln|error|."""
    variance: float
    effect: float
    alpha: float
    beta: float
    candidate_n: int
    production_n: int

    def as_record(self) -> dict[str, float | int | str]:
        return {
            "metric": self.metric,
            "outcome": self.outcome,
            "statistic": round(self.statistic, 6),
            "upper": round(self.upper, 6),
            "lower": round(self.lower, 6),
            "difference": round(self.difference, 9),
            "variance": float(f"{self.variance:.9g}"),
            "effect": round(self.effect, 9),
            "alpha": self.alpha,
            "beta": round(self.beta, 9),
            "candidate_n": self.candidate_n,
            "production_n": self.production_n,
        }


_OUTCOMES: dict[int, Outcome] = {1: "rollback", -1: "promote", 0: "continue"}


_RATE_FIELDS = {ERROR_RATE: ("requests", "errors"), ACCURACY: ("labeled", "misses")}
"""A Bernoulli metric's observations and events in `Counts` (accuracy: a classifier's)."""
_LOG_FIELDS = {
    LATENCY: ("latency_count", "log_latency_sum", "log_latency_sq_sum"),
    ACCURACY: ("labeled", "log_abs_error_sum", "log_abs_error_sq_sum"),
}
"""A log-normal metric's observations, sum and sum of squares (accuracy: a regressor's)."""


def _test(canary: Canary, metric: str, candidate: Counts, production: Counts) -> TestResult:
    design = canary.design(metric)
    if metric == ERROR_RATE or (metric == ACCURACY and canary.classification):
        observed, events = _RATE_FIELDS[metric]
        n_c, n_p = getattr(candidate, observed), getattr(production, observed)
        statistic, difference, variance = error_rate_llr(
            n_c, getattr(candidate, events), n_p, getattr(production, events), design.effect
        )
    else:
        observed, total, squares = _LOG_FIELDS[metric]
        n_c, n_p = getattr(candidate, observed), getattr(production, observed)
        statistic, difference, variance = latency_llr(
            n_c,
            getattr(candidate, total),
            getattr(candidate, squares),
            n_p,
            getattr(production, total),
            getattr(production, squares),
            design.effect,
        )
    verdict = int(outcome_of(statistic, design, n_c, n_p))
    return TestResult(
        metric=metric,
        outcome=_OUTCOMES[verdict],
        statistic=float(statistic),
        upper=design.upper,
        lower=design.lower,
        difference=float(difference),
        variance=float(variance),
        effect=design.effect,
        alpha=design.alpha,
        beta=design.beta,
        candidate_n=int(n_c),
        production_n=int(n_p),
    )


def run_tests(canary: Canary, candidate: Counts, production: Counts) -> list[TestResult]:
    """Every configured metric's test on the counters as they are now."""
    return [_test(canary, metric, candidate, production) for metric in canary.metrics]


def combined(outcomes: list[Outcome]) -> Outcome:
    """The rollout's outcome from its tests': rollback when any metric says worse (the error
    rate when a candidate fails every request: it then has no latency), promote when every
    metric says no worse, else continue."""
    if "rollback" in outcomes:
        return "rollback"
    if outcomes and all(o == "promote" for o in outcomes):
        return "promote"
    return "continue"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    tests: list[TestResult]
    expired: bool = False


def decide(
    canary: Canary,
    candidate: Counts,
    production: Counts,
    *,
    expired: bool,
    min_requests: int,
) -> Decision:
    """The rollout's decision now. While time remains: the tests' combined outcome. Once
    `expired` (`candidate_max_minutes` passed) without a test's rollback: promote when the
    candidate served at least `min_requests` (no evidence that it is worse within the budget),
    else drop as a rollback (too little evidence that it is safe)."""
    tests = run_tests(canary, candidate, production)
    outcome = combined([t.outcome for t in tests])
    summary = "; ".join(_describe(t) for t in tests)
    if outcome == "rollback":
        worse = ", ".join(t.metric.replace("_", " ") for t in tests if t.outcome == "rollback")
        return Decision("rollback", f"worse {worse} ({summary})", tests)
    if outcome == "promote":
        return Decision("promote", f"no worse ({summary})", tests)
    if not expired:
        return Decision("continue", summary, tests)
    if candidate.requests >= min_requests:
        return Decision(
            "promote",
            f"time up without evidence of worse after {candidate.requests} candidate requests "
            f"(at least {min_requests}) ({summary})",
            tests,
            expired=True,
        )
    return Decision(
        "rollback",
        f"time up after only {candidate.requests} candidate requests (fewer than "
        f"{min_requests}: too little evidence that it is safe) ({summary})",
        tests,
        expired=True,
    )


def _describe(test: TestResult) -> str:
    return (
        f"{test.metric.replace('_', ' ')}: llr {test.statistic:.2f} in "
        f"[{test.lower:.2f}, {test.upper:.2f}], {test.outcome}, "
        f"n {test.candidate_n} vs {test.production_n}"
    )


def expected_candidate_requests(
    design: Design, *, worse: bool, variance_per_request: float, share: float
) -> float:
    """Wald's ASN in candidate requests: the expected information at the stop times the
    variance one candidate request brings when a `share` of traffic goes to the candidate
    (`variance_per_request`: sigma_c**2 + sigma_p**2 * share / (1 - share) for the two
    arms' per-request variances)."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), not {share}")
    return design.expected_information(worse=worse) * variance_per_request
