"""The exit policy of early exit, in NumPy: which exit each image leaves at, and the
thresholds that meet a budget of MACs (the MSDNet procedure, Huang et al., ICLR 2018)."""

from __future__ import annotations

import bisect
import math

import numpy as np

__all__ = [
    "assign_exits",
    "average_macs",
    "check_budget",
    "check_budgets",
    "check_fraction",
    "check_probabilities",
    "checked_thresholds",
    "exit_proportions",
    "fit_thresholds",
    "select",
    "thresholds_for",
]


def exit_proportions(p: float, num_exits: int) -> np.ndarray:
    """The MSDNet target share of images leaving at each exit, q_k ∝ p^k, k = 1..K (K,).

    Args:
        p: the ratio of one exit's share to the previous one's, > 0.
        num_exits: K.
    """
    logits = np.log(p) * np.arange(1, num_exits + 1)
    q = np.exp(logits - logits.max())
    return q / q.sum()


def thresholds_for(confidence: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """Thresholds (K - 1,) that send about `proportions[k-1]` of the images to exit k.

    The MSDNet reference's `dynamic_eval_find_threshold`: at exit k, among the images not
    gone yet, sorted by confidence (their largest class probability, `confidence` (K, N)),
    the floor(N * q_k)-th one (the last one's when fewer are left) is the last to leave;
    1.0 when that count is 0 (then only images of confidence exactly 1.0 leave). The
    threshold lies halfway between its confidence and the next lower one among the images
    still in (`_halfway`): the same images leave as at its confidence itself, and an
    exported graph, whose kernels round differently, makes the same choice for them.

    Args:
        confidence: (K, N) every exit's largest class probability for every image.
        proportions: (K,) the share of the images to send to each exit.
    """
    num_exits, n = confidence.shape
    gone = np.zeros(n, dtype=bool)
    thresholds = np.ones(num_exits - 1)
    for k in range(num_exits - 1):
        count = math.floor(n * proportions[k])
        order = np.argsort(-confidence[k], kind="stable")
        remaining = order[~gone[order]]
        if count > 0 and len(remaining):
            last = min(count, len(remaining))
            c = confidence[k, remaining[last - 1]]
            rest = confidence[k, remaining[last:]]
            thresholds[k] = _halfway(c, rest[rest < c])
        gone |= confidence[k] >= thresholds[k]
    return thresholds


def _halfway(high: float, lower: np.ndarray) -> float:
    """A float32 value in (max(lower), high], halfway between them where float32 has one
    there, else `high` (also when `lower` is empty); float32, as the exported graphs
    compare in it."""
    if lower.size == 0:
        return float(high)
    low = float(lower.max())
    mid = np.float32((float(high) + low) / 2)
    return float(mid) if low < mid <= high else float(high)


def assign_exits(confidence: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The exit (1-based, (N,)) each image leaves at.

    The first exit k with confidence[k-1] >= thresholds[k-1], else the last.

    Args:
        confidence: (K, N) every exit's largest class probability for every image.
        thresholds: (K - 1,) the thresholds of exits 1..K-1.
    """
    passed = confidence[:-1] >= np.asarray(thresholds)[:, None]
    return np.where(passed.any(axis=0), passed.argmax(axis=0) + 1, confidence.shape[0])


def check_probabilities(probs: np.ndarray, from_logits: bool) -> None:
    """Raise a ValueError unless every exit's rows of `probs` are finite distributions.

    Args:
        probs: (K, N, classes) every exit's outputs for every image.
        from_logits: whether the outputs were logits turned into probabilities (the error
            then gives no hint about logits).
    """
    for k, p in enumerate(probs, start=1):
        if not np.all(np.isfinite(p)):
            raise ValueError(f"Exit {k} gave NaN or infinite outputs: check the model's weights.")
        if p.min() < -1e-6 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
            hint = (
                ""
                if from_logits
                else " If the exits output logits "
                "(classifier_activation=None), pass from_logits=True."
            )
            raise ValueError(f"Exit {k}'s outputs are not class probabilities.{hint}")


def checked_thresholds(values, num_exits: int) -> np.ndarray:
    """`values` as (K - 1,) float64 thresholds in [0, 1], or a ValueError saying what is wrong.

    Args:
        values: a sequence of thresholds, one for each of exits 1..K-1.
        num_exits: K.
    """
    k = num_exits
    try:
        t = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be {k - 1} numbers, got {values!r}.") from None
    if t.shape != (k - 1,):
        raise ValueError(
            f"Expected {k - 1} thresholds (exits 1..{k - 1}; exit {k} takes every image "
            f"left), got {t.size}."
        )
    bad = [float(v) for v in t if not 0.0 <= v <= 1.0]  # NaN fails too
    if bad:
        raise ValueError(
            f"Thresholds are probabilities and must lie in [0, 1]; got {bad} in {t.tolist()}."
        )
    return t


def average_macs(exit_macs: np.ndarray, exits: np.ndarray) -> float:
    """Mean MACs per image of images that left at the given exits.

    Args:
        exit_macs: (K,) the cumulative cost of leaving at each exit.
        exits: (N,) the exit of each image, 1-based.

    Raises:
        ValueError: no exits, or an exit outside 1..K.
    """
    exits = np.asarray(exits)
    if exits.size == 0 or exits.min() < 1 or exits.max() > len(exit_macs):
        raise ValueError(f"exits must be a non-empty array of values in 1..{len(exit_macs)}.")
    return float(np.mean(exit_macs[exits.astype(np.int64) - 1]))


def check_fraction(budget) -> float:
    """`budget` as a float in (0, 1], or a ValueError naming what is wrong and the fix.

    Args:
        budget: a fraction of the full network's MACs.
    """
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"budget must be a number in (0, 1], a fraction of the full network's MACs "
            f"(e.g. budget=0.5); got {budget!r}."
        )
    value = float(budget)
    if math.isnan(value):
        raise ValueError(
            "budget is NaN: pass a fraction of the full network's MACs in (0, 1], e.g. budget=0.5."
        )
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"budget is a fraction of the full network's MACs in (0, 1], got {value}: pass "
            "e.g. budget=0.5 (half the MACs per image) or budget=1.0 (all of them)."
        )
    return value


def check_budget(budget, exit_macs: np.ndarray) -> float:
    """`budget` as a float fraction of `exit_macs[-1]`, or a ValueError.

    Args:
        budget: a fraction in (0, 1], at or above the cost of exit 1 alone.
        exit_macs: (K,) the cumulative cost of leaving at each exit.
    """
    budget = check_fraction(budget)
    floor = float(exit_macs[0] / exit_macs[-1])
    if budget < floor:
        raise ValueError(
            f"budget={budget} is below the cost of exit 1 alone ({floor:.4f} of the full "
            f"network, {int(exit_macs[0])} MACs): no thresholds can meet it. Pass a budget "
            f"of at least {floor:.4f}."
        )
    return budget


def check_budgets(budget, exit_macs: np.ndarray) -> list[float]:
    """`budget` as a list of budgets checked by `check_budget`, or a ValueError.

    Args:
        budget: one number or a sequence of distinct numbers.
        exit_macs: (K,) the cumulative cost of leaving at each exit.
    """
    if isinstance(budget, np.ndarray) and budget.ndim <= 1:
        budget = budget.tolist()
    if not isinstance(budget, (list, tuple)):
        return [check_budget(budget, exit_macs)]
    if not budget:
        raise ValueError(
            "budget is an empty sequence: pass one fraction of the full network's MACs or "
            "several, e.g. budget=[0.3, 0.5, 1.0]."
        )
    checked = [check_budget(b, exit_macs) for b in budget]
    repeated = sorted({b for b in checked if checked.count(b) > 1})
    if repeated:
        raise ValueError(f"budget lists {repeated} more than once: give each budget once.")
    return checked


def select(budgets: list[float], budget) -> int:
    """The index of the largest calibrated budget at or below `budget`.

    Args:
        budgets: the calibrated budgets, ascending.
        budget: the requested fraction in (0, 1].

    Raises:
        ValueError: `budget` is not a fraction in (0, 1], or lies below every budget.
    """
    budget = check_fraction(budget)
    i = bisect.bisect_right(budgets, budget) - 1
    if i < 0:
        raise ValueError(
            f"budget={budget} is below the smallest calibrated budget, {budgets[0]}: pass a "
            f"budget of at least {budgets[0]}, or calibrate at {budget} too "
            f"(calibrate(x_val, y_val, budget=[{budget}, ...]))."
        )
    return i


def fit_thresholds(
    confidence: np.ndarray, exit_macs: np.ndarray, budget: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Thresholds under which the images' mean cost is at most `budget * exit_macs[-1]`.

    Target exit shares q_k ∝ p^k (`exit_proportions`), thresholds from the sorted
    confidences of the images still in (`thresholds_for`); p is found by bisection on
    log p, the largest p whose cost meets the budget, rather than on a grid of p.

    Args:
        confidence: (K, N) every exit's largest class probability for every image.
        exit_macs: (K,) the cumulative cost of leaving at each exit.
        budget: the fraction of `exit_macs[-1]` to stay within.

    Returns:
        (thresholds (K - 1,), the exit of each image (N,), p).
    """
    num_exits = len(exit_macs)
    target = budget * float(exit_macs[-1])

    def fit(log_p: float) -> tuple[np.ndarray, np.ndarray]:
        t = thresholds_for(confidence, exit_proportions(math.exp(log_p), num_exits))
        return t, assign_exits(confidence, t)

    lo, hi = -50.0, 50.0  # all images at exit 1 .. all at exit K, for any N < e^50
    best = fit(hi)
    if average_macs(exit_macs, best[1]) <= target:
        return *best, math.exp(hi)
    best = fit(lo)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        candidate = fit(mid)
        if average_macs(exit_macs, candidate[1]) <= target:
            lo, best = mid, candidate
        else:
            hi = mid
    return *best, math.exp(lo)
