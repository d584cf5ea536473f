"""The canary's sequential test, simulated: many seeded rollouts at once through the module's
own statistics (numpy arrays of counters), read after every capture object of 100 requests.

- an equal candidate is promoted, and the false-rollback rate over 2,000 seeds has an upper
  95 % Clopper-Pearson bound at most alpha + 0.01;
- a worse candidate (by the minimum effect) is rolled back within the test's expected sample
  size: the mean over the rolled-back runs is within 1.3x Wald's ASN (Wald's formula ignores
  the overshoot of reading the test per object, about 20 % here), and at least the power of
  the runs roll back;
- `decide` (the scalar path the canary function runs) agrees with the vectorised one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import beta as beta_distribution

from functions.ml import sequential as sq

REQUESTS_PER_OBJECT = 100
OBJECTS = 500
LATENCY_MS = 20.0
LOG_SIGMA = 0.3
ASN_MARGIN = 1.3


@dataclass(frozen=True)
class Runs:
    """Cumulative counters of `seeds` rollouts after each object: arrays (seeds, objects)."""

    n_c: np.ndarray
    e_c: np.ndarray
    n_p: np.ndarray
    e_p: np.ndarray
    l_c: np.ndarray
    s_c: np.ndarray
    q_c: np.ndarray
    l_p: np.ndarray
    s_p: np.ndarray
    q_p: np.ndarray

    def counts(self, seed: int, step: int) -> tuple[sq.Counts, sq.Counts]:
        c = sq.Counts(
            int(self.n_c[seed, step]),
            int(self.e_c[seed, step]),
            int(self.l_c[seed, step]),
            float(self.s_c[seed, step]),
            float(self.q_c[seed, step]),
        )
        p = sq.Counts(
            int(self.n_p[seed, step]),
            int(self.e_p[seed, step]),
            int(self.l_p[seed, step]),
            float(self.s_p[seed, step]),
            float(self.q_p[seed, step]),
        )
        return c, p


def simulate(
    seeds: int, *, share: float, error_c: float, error_p: float, slowdown: float, seed: int
) -> Runs:
    """Requests split by `share`, failing with the arms' error rates, successful ones taking
    a log-normal time (the candidate's `slowdown` times production's geometric mean). Each
    object's log-latency sums are drawn exactly: the sum of k normals, and its sum of squares
    as k * mean**2 plus sigma**2 * chi2(k - 1)."""
    rng = np.random.default_rng(seed)
    shape = (seeds, OBJECTS)
    n_c = rng.binomial(REQUESTS_PER_OBJECT, share, size=shape)
    n_p = REQUESTS_PER_OBJECT - n_c
    e_c, e_p = rng.binomial(n_c, error_c), rng.binomial(n_p, error_p)

    def sums(k: np.ndarray, mu: float) -> tuple[np.ndarray, np.ndarray]:
        total = k * mu + LOG_SIGMA * np.sqrt(k) * rng.standard_normal(shape)
        spread = LOG_SIGMA**2 * rng.chisquare(np.maximum(k - 1, 1)) * (k > 1)
        return total, spread + np.where(k > 0, total**2 / np.maximum(k, 1), 0)

    mu = math.log(LATENCY_MS)
    s_c, q_c = sums(n_c - e_c, mu + math.log(slowdown))
    s_p, q_p = sums(n_p - e_p, mu)

    def cumulative(values: np.ndarray) -> np.ndarray:
        return np.cumsum(values, axis=1)

    return Runs(
        *(cumulative(a) for a in (n_c, e_c, n_p, e_p, n_c - e_c, s_c, q_c, n_p - e_p, s_p, q_p))
    )


def stops(runs: Runs, canary: sq.Canary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per seed: the outcome at the first object where the rollout decided (1 rollback, -1
    promote, 0 undecided after every object), that object's index and the candidate's
    requests then."""
    error, latency = canary.design(sq.ERROR_RATE), canary.design(sq.LATENCY)
    llr_e, _, _ = sq.error_rate_llr(runs.n_c, runs.e_c, runs.n_p, runs.e_p, error.effect)
    llr_l, _, _ = sq.latency_llr(
        runs.l_c, runs.s_c, runs.q_c, runs.l_p, runs.s_p, runs.q_p, latency.effect
    )
    by_error = sq.outcome_of(llr_e, error, runs.n_c, runs.n_p)
    by_latency = sq.outcome_of(llr_l, latency, runs.l_c, runs.l_p)
    rolled_back = (by_error == 1) | (by_latency == 1)
    combined = np.where(rolled_back, 1, np.where((by_error == -1) & (by_latency == -1), -1, 0))
    decided = combined != 0
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), OBJECTS - 1)
    rows = np.arange(len(first))
    return combined[rows, first], first, runs.n_c[rows, first]


def clopper_pearson_upper(successes: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided upper bound of a binomial proportion (exact)."""
    if successes >= trials:
        return 1.0
    return float(beta_distribution.ppf(confidence, successes + 1, trials - successes))


CANARY = sq.Canary(alpha=0.05, power=0.8, min_effect_error_rate=0.01, min_effect_latency=0.2)


@pytest.mark.parametrize(
    ("share", "error_rate"),
    [(0.2, 0.01), (0.5, 0.0), (0.1, 0.05)],
    ids=["share-0.2-errors-1pct", "share-0.5-no-errors", "share-0.1-errors-5pct"],
)
def test_an_equal_candidate_is_promoted_and_falsely_rolled_back_at_most_alpha(
    share: float, error_rate: float
) -> None:
    seeds = 2_000
    runs = simulate(
        seeds, share=share, error_c=error_rate, error_p=error_rate, slowdown=1.0, seed=11
    )
    outcome, _, _ = stops(runs, CANARY)

    false_rollbacks = int((outcome == 1).sum())
    assert clopper_pearson_upper(false_rollbacks, seeds) <= CANARY.alpha + 0.01
    assert (outcome == -1).mean() >= 0.9  # promoted by the test itself, not by time running out


def test_a_candidate_worse_in_error_rate_is_rolled_back_within_the_expected_sample() -> None:
    share, base = 0.2, 0.01
    worse = base + CANARY.min_effect_error_rate
    runs = simulate(1_000, share=share, error_c=worse, error_p=base, slowdown=1.0, seed=5)
    outcome, _, candidate_requests = stops(runs, CANARY)

    design = CANARY.design(sq.ERROR_RATE)
    pooled = share * worse + (1 - share) * base  # what the test's variance sees, in the mean
    rate = pooled + design.effect / 2
    asn = sq.expected_candidate_requests(
        design, worse=True, variance_per_request=rate * (1 - rate) / (1 - share), share=share
    )
    rolled_back = outcome == 1
    assert rolled_back.mean() >= CANARY.power - 0.03  # the configured power, up to noise
    assert candidate_requests[rolled_back].mean() <= ASN_MARGIN * asn
    assert 500 < asn < 2_000  # the scenario is one the test needs evidence for


def test_a_slower_candidate_is_rolled_back_within_the_expected_sample() -> None:
    share = 0.2
    slowdown = 1 + CANARY.min_effect_latency
    runs = simulate(1_000, share=share, error_c=0.0, error_p=0.0, slowdown=slowdown, seed=9)
    outcome, _, candidate_requests = stops(runs, CANARY)

    design = CANARY.design(sq.LATENCY)
    variance = LOG_SIGMA**2 * (1 + share / (1 - share))
    asn = sq.expected_candidate_requests(
        design, worse=True, variance_per_request=variance, share=share
    )
    rolled_back = outcome == 1
    assert rolled_back.mean() >= CANARY.power
    # The test reads no arm before it has MIN_ARM_REQUESTS: the earliest possible stop.
    expected = max(asn, sq.MIN_ARM_REQUESTS)
    assert candidate_requests[rolled_back].mean() <= ASN_MARGIN * expected + 20  # one object


def test_a_failing_candidate_is_rolled_back_within_a_few_hundred_requests() -> None:
    runs = simulate(200, share=0.5, error_c=1.0, error_p=0.0, slowdown=1.0, seed=3)
    outcome, _, candidate_requests = stops(runs, CANARY)
    assert (outcome == 1).all()
    # Every request failing at share 0.5: d = 1 and V = 0.25 * 2 / n_c (the variance's rate
    # is capped at 0.5), so llr ~ theta * n_c / 0.5, which reaches the upper boundary at
    # n_c = 0.5 * upper / theta (173 here); the test is read once per object after that.
    bound = 0.5 * CANARY.design(sq.ERROR_RATE).upper / CANARY.min_effect_error_rate
    bound += REQUESTS_PER_OBJECT
    assert candidate_requests.max() <= bound


def test_the_scalar_decision_matches_the_simulation() -> None:
    runs = simulate(40, share=0.3, error_c=0.02, error_p=0.01, slowdown=1.1, seed=21)
    outcome, first, _ = stops(runs, CANARY)
    names = {1: "rollback", -1: "promote", 0: "continue"}
    for seed in range(40):
        candidate, production = runs.counts(seed, int(first[seed]))
        decision = sq.decide(CANARY, candidate, production, expired=False, min_requests=1)
        assert decision.outcome == names[int(outcome[seed])]
        if first[seed] > 0 and outcome[seed] != 0:  # undecided one object earlier
            candidate, production = runs.counts(seed, int(first[seed]) - 1)
            before = sq.decide(CANARY, candidate, production, expired=False, min_requests=1)
            assert before.outcome == "continue"


def test_time_up_promotes_only_with_enough_candidate_requests() -> None:
    candidate = sq.Counts(requests=40, errors=0, latency_count=40, log_latency_sum=40 * 3.0)
    production = sq.Counts(requests=40, errors=0, latency_count=40, log_latency_sum=40 * 3.0)
    running = sq.decide(CANARY, candidate, production, expired=False, min_requests=100)
    assert running.outcome == "continue"
    short = sq.decide(CANARY, candidate, production, expired=True, min_requests=100)
    assert (short.outcome, short.expired) == ("rollback", True)
    assert "fewer than 100" in short.reason
    enough = sq.decide(CANARY, candidate, production, expired=True, min_requests=40)
    assert (enough.outcome, enough.expired) == ("promote", True)


def test_a_decision_records_each_test_with_its_boundaries_and_sample_sizes() -> None:
    candidate = sq.Counts(requests=200, errors=200)
    production = sq.Counts(
        requests=800, errors=0, latency_count=800, log_latency_sum=800 * 3.0,
        log_latency_sq_sum=800 * 9.01,
    )  # fmt: skip
    decision = sq.decide(CANARY, candidate, production, expired=False, min_requests=1)
    assert decision.outcome == "rollback" and decision.reason.startswith("worse error rate")
    error, latency = (t.as_record() for t in decision.tests)
    assert error["metric"] == "error_rate" and error["outcome"] == "rollback"
    assert (error["candidate_n"], error["production_n"]) == (200, 800)
    assert error["statistic"] >= error["upper"] == pytest.approx(math.log(0.8 / 0.025))
    assert latency["candidate_n"] == 0 and latency["outcome"] == "continue"


@pytest.mark.parametrize(
    ("alpha", "beta", "effect"), [(0.0, 0.2, 0.01), (0.05, 1.0, 0.01), (0.05, 0.2, 0.0)]
)
def test_a_design_outside_the_test_s_range_is_refused(
    alpha: float, beta: float, effect: float
) -> None:
    with pytest.raises(ValueError, match="alpha|effect"):
        sq.Design(alpha=alpha, beta=beta, effect=effect)


# Accuracy on feedback labels (`canary_accuracy = true`): three tests share alpha.

ACCURATE = sq.Canary(
    alpha=0.05,
    power=0.8,
    min_effect_error_rate=0.01,
    min_effect_latency=0.2,
    accuracy=True,
    min_effect_accuracy=0.05,
)
LABEL_RATE = 0.5
"""Share of requests whose true label comes back while the rollout runs."""


def accuracy_stops(
    seeds: int, *, share: float, miss_c: float, miss_p: float, seed: int, canary: sq.Canary
) -> tuple[np.ndarray, np.ndarray]:
    """Rollouts of error-free, equally fast arms whose labeled requests miss at the arms'
    rates: per seed, the outcome where the rollout decided (the three tests combined, as
    `combined` does) and the candidate's labeled requests then."""
    runs = simulate(seeds, share=share, error_c=0.0, error_p=0.0, slowdown=1.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    labeled_c = np.cumsum(rng.binomial(np.diff(runs.n_c, axis=1, prepend=0), LABEL_RATE), axis=1)
    labeled_p = np.cumsum(rng.binomial(np.diff(runs.n_p, axis=1, prepend=0), LABEL_RATE), axis=1)
    misses_c = np.cumsum(rng.binomial(np.diff(labeled_c, axis=1, prepend=0), miss_c), axis=1)
    misses_p = np.cumsum(rng.binomial(np.diff(labeled_p, axis=1, prepend=0), miss_p), axis=1)
    verdicts = []
    for metric in canary.metrics:
        design = canary.design(metric)
        if metric == sq.ERROR_RATE:
            statistic, _, _ = sq.error_rate_llr(
                runs.n_c, runs.e_c, runs.n_p, runs.e_p, design.effect
            )
            verdicts.append(sq.outcome_of(statistic, design, runs.n_c, runs.n_p))
        elif metric == sq.LATENCY:
            statistic, _, _ = sq.latency_llr(
                runs.l_c, runs.s_c, runs.q_c, runs.l_p, runs.s_p, runs.q_p, design.effect
            )
            verdicts.append(sq.outcome_of(statistic, design, runs.l_c, runs.l_p))
        else:
            statistic, _, _ = sq.error_rate_llr(
                labeled_c, misses_c, labeled_p, misses_p, design.effect
            )
            verdicts.append(sq.outcome_of(statistic, design, labeled_c, labeled_p))
    stacked = np.stack(verdicts)
    combined = np.where((stacked == 1).any(axis=0), 1, np.where((stacked == -1).all(axis=0), -1, 0))
    decided = combined != 0
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), OBJECTS - 1)
    rows = np.arange(seeds)
    return combined[rows, first], labeled_c[rows, first]


def test_with_accuracy_each_of_the_three_tests_runs_at_a_third_of_alpha() -> None:
    assert ACCURATE.metrics == (sq.ERROR_RATE, sq.LATENCY, sq.ACCURACY)
    assert [ACCURATE.design(m).alpha for m in ACCURATE.metrics] == [pytest.approx(0.05 / 3)] * 3
    assert ACCURATE.design(sq.ACCURACY).effect == 0.05
    regressor = sq.Canary(accuracy=True, classification=False, min_effect_abs_error=0.25)
    assert regressor.design(sq.ACCURACY).effect == pytest.approx(math.log(1.25))


def test_an_equally_accurate_candidate_is_promoted_and_falsely_rolled_back_at_most_alpha() -> None:
    seeds = 2_000
    outcome, _ = accuracy_stops(seeds, share=0.3, miss_c=0.2, miss_p=0.2, seed=17, canary=ACCURATE)
    false_rollbacks = int((outcome == 1).sum())
    assert clopper_pearson_upper(false_rollbacks, seeds) <= ACCURATE.alpha + 0.01
    assert (outcome == -1).mean() >= 0.9


def test_a_less_accurate_candidate_is_rolled_back_within_the_expected_sample() -> None:
    share, base = 0.3, 0.2
    worse = base + ACCURATE.min_effect_accuracy
    outcome, labeled = accuracy_stops(
        1_000, share=share, miss_c=worse, miss_p=base, seed=23, canary=ACCURATE
    )
    design = ACCURATE.design(sq.ACCURACY)
    pooled = share * worse + (1 - share) * base
    rate = pooled + design.effect / 2
    asn = sq.expected_candidate_requests(
        design, worse=True, variance_per_request=rate * (1 - rate) / (1 - share), share=share
    )
    rolled_back = outcome == 1
    assert rolled_back.mean() >= ACCURATE.power - 0.03
    assert labeled[rolled_back].mean() <= ASN_MARGIN * asn  # in labeled candidate requests


def test_a_less_accurate_regressor_is_rolled_back_on_its_typical_error() -> None:
    regressor = sq.Canary(accuracy=True, classification=False, min_effect_abs_error=0.2)
    rng = np.random.default_rng(4)
    # ln|error| of 400 labeled requests per arm; the candidate's errors are 30 % larger
    production = np.log(np.abs(rng.normal(0.0, 1.0, 400)))
    candidate = np.log(np.abs(rng.normal(0.0, 1.3, 400)))

    def arm(logs: np.ndarray) -> sq.Counts:
        return sq.Counts(
            requests=1_000,
            latency_count=1_000,
            log_latency_sum=1_000 * 3.0,
            log_latency_sq_sum=1_000 * 9.01,
            labeled=len(logs),
            log_abs_error_sum=float(logs.sum()),
            log_abs_error_sq_sum=float((logs**2).sum()),
        )

    decision = sq.decide(regressor, arm(candidate), arm(production), expired=False, min_requests=1)
    assert decision.outcome == "rollback" and "worse accuracy" in decision.reason
    accuracy = decision.tests[-1]
    assert (accuracy.metric, accuracy.candidate_n) == ("accuracy", 400)
    same = sq.decide(regressor, arm(production), arm(production), expired=False, min_requests=1)
    assert same.outcome == "promote"


def test_without_labels_an_accuracy_rollout_waits_for_them_or_for_time() -> None:
    healthy = sq.Counts(
        requests=5_000, latency_count=5_000, log_latency_sum=5_000 * 3.0,
        log_latency_sq_sum=5_000 * 9.01,
    )  # fmt: skip
    assert sq.decide(CANARY, healthy, healthy, expired=False, min_requests=1).outcome == "promote"
    waiting = sq.decide(ACCURATE, healthy, healthy, expired=False, min_requests=1)
    assert waiting.outcome == "continue"
    assert waiting.tests[-1].candidate_n == 0
    expired = sq.decide(ACCURATE, healthy, healthy, expired=True, min_requests=1_000)
    assert (expired.outcome, expired.expired) == ("promote", True)
