"""Static per-exit loss weights, one float per exit, for `compile(loss_weights=...)`.

The schemes are those compared in Hu et al. (AAAI 2019, arXiv 1708.06832); `sieve`
follows the authors' `sieve_loss_weights`. Exits are ordered shallow to deep.
"""

from __future__ import annotations

__all__ = ["SCHEMES", "const", "half_end", "linear", "opt", "sieve"]


def _check(k: int) -> None:
    """Raise a ValueError unless `k`, the number of exits, is an integer >= 1."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"The number of exits must be an integer >= 1, got {k!r}.")


def const(k: int) -> list[float]:
    """CONST: every exit weighs 1.

    Args:
        k: the number of exits, >= 1.
    """
    _check(k)
    return [1.0] * k


def linear(k: int, low: float = 0.25, high: float = 1.0) -> list[float]:
    """LINEAR: a straight line from `low` at the first exit to `high` at the last.

    Args:
        k: the number of exits, >= 1.
        low: the first exit's weight. Defaults to 0.25.
        high: the last exit's weight. Defaults to 1.0.
    """
    _check(k)
    if k == 1:
        return [float(high)]
    return [low + (high - low) * i / (k - 1) for i in range(k)]


def half_end(k: int) -> list[float]:
    """HALF-END: 1/(K-1) on each early exit and 1 on the last, half the total weight.

    Args:
        k: the number of exits, >= 1.
    """
    _check(k)
    if k == 1:
        return [1.0]
    return [1.0 / (k - 1)] * (k - 1) + [1.0]


def sieve(k: int) -> list[float]:
    """SIEVE: the authors' sieve weights; the deepest exit weighs as much as all others.

    For step = 1, 2, 4, ... while step < K, add 1 to every step-th exit counting back
    from the deepest; the deepest then gets the sum of all the others; the weights are
    scaled to sum to the number of those passes, ceil(log2 K).

    That total is the one of the authors' `sieve_loss_weights` in
    EchoWho/AnytimeNeuralNetwork_public (`tensorpack/utils/anytime_loss.py`); one
    revision of that file scales to log2(K + 1) instead. The shape is the same either way;
    the total sets the step size with SGD.

    Args:
        k: the number of exits, >= 1.
    """
    _check(k)
    if k == 1:
        return [1.0]
    back = [0.0] * k  # back[j] is the weight of the exit j places before the deepest
    step, passes = 1, 0
    while step < k:
        for j in range(0, k, step):
            back[j] += 1.0
        step *= 2
        passes += 1
    back[0] = sum(back[1:])
    scale = passes / sum(back)
    return [w * scale for w in reversed(back)]


def opt(k: int, at: int) -> list[float]:
    """OPT: weight 1 at exit `at` only.

    Args:
        k: the number of exits, >= 1.
        at: the exit, counted from 1 (exit_1 … exit_K) like the output names; -1: the last.

    Raises:
        ValueError: `at` is no exit number (nor -1).
    """
    _check(k)
    index = k if at == -1 else at
    if not isinstance(index, int) or not 1 <= index <= k:
        raise ValueError(f"`at` must be an exit number in 1..{k} (or -1), got {at!r}.")
    return [1.0 if i == index else 0.0 for i in range(1, k + 1)]


SCHEMES = {"const": const, "linear": linear, "half_end": half_end, "sieve": sieve}
