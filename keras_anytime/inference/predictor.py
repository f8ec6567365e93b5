"""`EarlyExitPredictor`: early-exit prediction, calibration to a MACs budget, and its
saved form (see the package docstring)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence

import keras
import numpy as np
from keras import ops

from keras_anytime.inference import policy, stages

__all__ = ["EarlyExitPredictor", "SIDECAR_SUFFIX"]

SIDECAR_SUFFIX = ".early_exit.json"
_FORMAT = "keras_anytime.early_exit"


class EarlyExitPredictor:
    """Early-exit inference for a multi-exit functional model (any keras-anytime family).

    Args:
        model: a functional model of one input of fixed shape and outputs `exit_1 …
            exit_K` (K >= 2, shallow to deep), each (batch, classes); its layers are shared.
        from_logits: the exits output logits (`classifier_activation=None`), which a
            softmax turns into probabilities. Defaults to False (probabilities).

    Stages (`stages.cut`): stage k holds the layer calls exit k needs that no earlier exit
    needs, nested functional models (an `EANN`'s members) expanded into their layers; it
    is a functional sub-model over the original layers that reads tensors of earlier
    stages and outputs exit k's probabilities and the tensors later stages read.

    Compilation (`stages.compiled`): on TensorFlow a `tf.function` with reduce_retracing
    per stage, one graph for every batch size, which spares eager calls' per-operation
    cost, and not XLA, which compiles again for every count of images left; on JAX
    `jax.jit` over power-of-two paddings of the images left; on PyTorch none (eager).

    Thresholds start at 1.0 (only images of confidence exactly 1.0 leave early) until
    `calibrate` or an assignment to `thresholds` sets them; `calibrate` at several budgets
    keeps a table (`budget_table`) from which `predict` and `export` serve any budget.

    Attributes:
        exit_macs: (K,) int, MACs of one image that leaves at exit k, the earlier heads
            included (`exit_flops(model, include_earlier_exits=True, lazy=True)`).

    Raises:
        ValueError: not a functional model of one input and >= 2 exits of one shape.

    Example:

    ```python
    predictor = EarlyExitPredictor(zoo.from_preset("msdnet_cifar10"))
    predictor.calibrate(x_val, y_val, budget=[0.3, 0.5, 1.0])
    probabilities, exits = predictor.predict(x_test, budget=0.5)
    predictor.save("msdnet.keras")  # and msdnet.keras.early_exit.json
    ```
    """

    def __init__(self, model: keras.Model, *, from_logits: bool = False):
        if len(getattr(model, "inputs", None) or []) != 1 or not hasattr(
            model, "_run_through_graph"
        ):
            raise ValueError(
                "EarlyExitPredictor needs a functional model with one input (any "
                "keras_anytime.applications builder returns one)."
            )
        if len(model.outputs) < 2:
            raise ValueError(
                f"{model.name} has a single output; early exit needs at least two exits."
            )
        classes = {tuple(o.shape[1:]) for o in model.outputs}
        if len(classes) != 1 or len(next(iter(classes))) != 1:
            raise ValueError(
                f"Every exit must output (batch, classes) with the same classes; got "
                f"{[tuple(o.shape) for o in model.outputs]}."
            )
        self.model = model
        self.from_logits = bool(from_logits)
        self.num_exits = len(model.outputs)
        self.classes = next(iter(classes))[0]
        self._input_dtype = model.inputs[0].dtype
        self._stages = stages.cut(model, self._post)
        self.exit_macs = np.cumsum([s.macs for s in self._stages]).astype(np.int64)
        self._thresholds = np.ones(self.num_exits - 1)
        self._table: list[dict] = []

    def _post(self, outputs: list) -> list:
        """[probabilities, *outputs] from a stage sub-model's outputs."""
        probs = ops.cast(outputs[0], "float32")
        return [ops.softmax(probs) if self.from_logits else probs, *outputs]

    @property
    def thresholds(self) -> np.ndarray:
        """(K - 1,) floats in [0, 1], those `predict` uses without a budget.

        An image leaves at exit k < K when its largest class probability there is >=
        thresholds[k-1]; exit K takes every image left. After `calibrate`, those of its
        largest budget. A copy; assigning a new sequence clears `budget_table`."""
        return self._current().copy()

    @thresholds.setter
    def thresholds(self, values: Sequence[float]) -> None:
        self._thresholds = policy.checked_thresholds(values, self.num_exits)
        self._table = []

    @property
    def budget(self) -> float | None:
        """The largest calibrated budget, that of `thresholds`; None for thresholds set by hand."""
        return self._table[-1]["budget"] if self._table else None

    @property
    def budget_table(self) -> list[dict]:
        """The budgets of the last `calibrate`, smallest first; empty for thresholds by hand.

        One dict each: {"budget", "thresholds" (K - 1 floats), "average_macs" (MACs per
        image on the calibration images), "accuracy" (top-1 on them, 0..1)}, the last two
        None when loaded from a sidecar that did not keep them."""
        return [{**entry, "thresholds": entry["thresholds"].tolist()} for entry in self._table]

    def _walk(
        self, x: np.ndarray, batch_size: int, thresholds: np.ndarray | None, last: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """Run stages 1..`last` over `x`, batch by batch. Yields, for each stage run,
        (k, probabilities (m, classes) of the m images that reached exit k, their row
        numbers in `x` (m,), which of them leave here (m,) bool). With thresholds None
        no image leaves before exit `last`."""
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            rows = np.arange(start, stop)
            state = {0: ops.convert_to_tensor(x[start:stop], dtype=self._input_dtype)}
            for k, stage in enumerate(self._stages[:last], start=1):
                outputs = stage.fn([state[key] for key in stage.reads])
                probs = ops.convert_to_numpy(outputs[0])
                if k == last:
                    yield k, probs, rows, np.ones(len(rows), dtype=bool)
                    break
                leave = (
                    np.zeros(len(rows), dtype=bool)
                    if thresholds is None
                    else probs.max(axis=1) >= thresholds[k - 1]
                )
                yield k, probs, rows, leave
                if leave.all():
                    break
                state.update((key, v) for key, v in zip(stage.writes, outputs) if key is not None)
                needed = {key for s in self._stages[k:last] for key in s.reads}
                stay = np.flatnonzero(~leave) if leave.any() else None
                state = {
                    key: v if stay is None else stages.take_rows(v, stay)
                    for key, v in state.items()
                    if key in needed
                }
                rows = rows if stay is None else rows[stay]

    def _checked_x(self, x, batch_size: int) -> np.ndarray:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        x = np.asarray(x)
        expected = tuple(self.model.inputs[0].shape[1:])
        if x.ndim != len(expected) + 1 or any(
            e is not None and e != d for e, d in zip(expected, x.shape[1:])
        ):
            raise ValueError(f"x must have shape (N, {expected}), got {x.shape}.")
        return x

    def predict(
        self, x: np.ndarray, batch_size: int = 256, *, budget: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Early-exit prediction of images `x` (N, H, W, C) (raw model input).

        Args:
            x: the images.
            batch_size: images per batch. Defaults to 256.
            budget: a fraction in (0, 1] of the full network's MACs: the thresholds of the
                largest calibrated budget at or below it (a ValueError below the smallest,
                or NaN). Defaults to None (`thresholds`).

        Returns:
            probabilities: (N, classes) float32, those of the exit each image left at.
            exits: (N,) int64, that exit, 1-based.
        """
        thresholds = self._current() if budget is None else self._entry(budget)["thresholds"]
        x = self._checked_x(x, batch_size)
        return self._gather(self._walk(x, batch_size, thresholds, self.num_exits), len(x))

    def _current(self) -> np.ndarray:
        """The thresholds `predict` uses without a budget (not a copy)."""
        return self._table[-1]["thresholds"] if self._table else self._thresholds

    def _entry(self, budget) -> dict:
        """The table entry of the largest calibrated budget at or below `budget`."""
        if not self._table:
            policy.check_fraction(budget)
            raise ValueError(
                "predict(budget=...) chooses among calibrated budgets, and this predictor "
                "has none (its thresholds were set by hand or never calibrated): call "
                "calibrate(x_val, y_val, budget=[...]) first, or predict without a budget."
            )
        return self._table[policy.select([e["budget"] for e in self._table], budget)]

    def predict_at(self, x: np.ndarray, exit: int, batch_size: int = 256) -> np.ndarray:
        """One exit's probabilities (N, classes), running only the stages up to it (anytime).

        Args:
            x: the images (N, H, W, C).
            exit: the exit, 1-based, in 1..K (else a ValueError).
            batch_size: images per batch. Defaults to 256.
        """
        if isinstance(exit, bool) or not isinstance(exit, (int, np.integer)):
            raise ValueError(f"exit must be an integer in 1..{self.num_exits}, got {exit!r}.")
        if not 1 <= exit <= self.num_exits:
            raise ValueError(f"exit must be in 1..{self.num_exits}, got {exit}.")
        x = self._checked_x(x, batch_size)
        return self._gather(self._walk(x, batch_size, None, int(exit)), len(x))[0]

    def _gather(self, walk, n: int) -> tuple[np.ndarray, np.ndarray]:
        probs = np.zeros((n, self.classes), np.float32)
        exits = np.zeros(n, np.int64)
        for k, p, rows, leave in walk:
            probs[rows[leave]] = p[leave]
            exits[rows[leave]] = k
        return probs, exits

    def exit_probabilities(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Every exit's probabilities for every image, (K, N, classes) float32, by the stages.

        Args:
            x: the images (N, H, W, C).
            batch_size: images per batch. Defaults to 256.
        """
        x = self._checked_x(x, batch_size)
        out = np.zeros((self.num_exits, len(x), self.classes), np.float32)
        for k, p, rows, _ in self._walk(x, batch_size, None, self.num_exits):
            out[k - 1, rows] = p
        return out

    def average_macs(self, exits: np.ndarray) -> float:
        """Mean MACs per image of images that left at the given exits.

        Args:
            exits: (N,) the exit of each image, 1-based, as `predict` returns them.
        """
        return policy.average_macs(self.exit_macs, exits)

    def calibrate(
        self,
        x_val: np.ndarray,
        y_val: np.ndarray,
        budget: float | Sequence[float],
        batch_size: int = 256,
    ) -> dict | list[dict]:
        """Fit the thresholds on held-out images to one budget of MACs per image, or several.

        The mean MACs per image becomes `budget` times `exit_macs[-1]`, or just below, by
        the MSDNet procedure (Huang et al., ICLR 2018; the reference's dynamic evaluation)
        that `policy.fit_thresholds` runs once per budget on one pass through every exit.
        The budgets replace `budget_table`; `thresholds` become those of the largest.

        Args:
            x_val: (N, H, W, C) images.
            y_val: (N,) integer labels (for the report).
            budget: a fraction of the full network's MACs in (0, 1], at least
                `exit_macs[0] / exit_macs[-1]` (every image leaving at exit 1), or a
                sequence of distinct such fractions.
            batch_size: images per batch. Defaults to 256.

        Returns:
            On `x_val`, for one budget: {"budget", "p", "thresholds" (K - 1 floats),
            "average_macs", "macs_fraction", "accuracy" (top-1, 0..1), "exit_fractions"
            (K floats)}; for a sequence, a list of those, in its order.
        """
        budgets = policy.check_budgets(budget, self.exit_macs)
        x_val = self._checked_x(x_val, batch_size)
        y_val = np.asarray(y_val).reshape(-1)
        if len(x_val) != len(y_val):
            raise ValueError(f"x_val has {len(x_val)} images but y_val has {len(y_val)} labels.")
        if len(x_val) == 0:
            raise ValueError("calibrate needs at least one image.")
        probs = self.exit_probabilities(x_val, batch_size)
        policy.check_probabilities(probs, self.from_logits)
        reports = [self._fit(probs, y_val, b) for b in budgets]
        self._set_table(reports)
        return reports if isinstance(budget, (list, tuple)) or np.ndim(budget) == 1 else reports[0]

    def _set_table(self, entries: list[dict]) -> None:
        """`budget_table` from `entries` (dicts with "budget" and "thresholds", and
        optionally "average_macs" and "accuracy"), checked and sorted by budget."""
        self._table = sorted(
            (
                {
                    "budget": policy.check_fraction(entry["budget"]),
                    "thresholds": policy.checked_thresholds(entry["thresholds"], self.num_exits),
                    "average_macs": entry.get("average_macs"),
                    "accuracy": entry.get("accuracy"),
                }
                for entry in entries
            ),
            key=lambda entry: entry["budget"],
        )

    def _fit(self, probs: np.ndarray, y: np.ndarray, budget: float) -> dict:
        """`calibrate`'s report for one budget, from every exit's probabilities (K, N,
        classes) of the calibration images."""
        # float32 softmax can round a hair past 1; thresholds are probabilities in [0, 1]
        confidence = np.clip(probs.max(axis=2), 0.0, 1.0)
        thresholds, exits, p = policy.fit_thresholds(confidence, self.exit_macs, budget)
        predicted = probs[exits - 1, np.arange(len(exits))].argmax(axis=1)
        mean = self.average_macs(exits)
        return {
            "budget": budget,
            "p": p,
            "thresholds": thresholds.tolist(),
            "average_macs": mean,
            "macs_fraction": mean / float(self.exit_macs[-1]),
            "accuracy": float(np.mean(predicted == y)),
            "exit_fractions": (
                np.bincount(exits, minlength=self.num_exits + 1)[1:] / len(exits)
            ).tolist(),
        }

    def export(
        self,
        path: str | os.PathLike,
        format: str = "tf_saved_model",
        batch_size: int | None = None,
        jit_compile: bool | None = None,
    ) -> None:
        """Write the predictor, exit policy and budget table inside (`inference.export.export`).

        Args:
            path: where to write.
            format: "tf_saved_model" or "litert". Defaults to "tf_saved_model".
            batch_size: the serving batch size. Defaults to None (any; LiteRT: 1).
            jit_compile: XLA for the SavedModel. Defaults to None (at batch size 1).
        """
        from keras_anytime.inference.export import export

        export(self, path, format, batch_size, jit_compile)

    def save(self, path: str | os.PathLike) -> None:
        """Save the model, and its thresholds, budget table and costs in a sidecar.

        Args:
            path: the model's `.keras` file; the sidecar is `path + ".early_exit.json"` (its
                format is in the package docstring).
        """
        path = os.fspath(path)
        self.model.save(path)
        sidecar = {
            "format": _FORMAT,
            "version": 1,
            "num_exits": self.num_exits,
            "exit_macs": [int(m) for m in self.exit_macs],
            "thresholds": self.thresholds.tolist(),
            "from_logits": self.from_logits,
            "budget": self.budget,
            "budgets": self.budget_table,
        }
        with open(path + SIDECAR_SUFFIX, "w") as f:
            json.dump(sidecar, f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EarlyExitPredictor:
        """Load a predictor written by `save(path)`, checking the sidecar against the model.

        A sidecar without "budgets" gives a table of its one budget (none by hand).

        Args:
            path: the `.keras` file `save` wrote.

        Raises:
            ValueError: no early-exit sidecar, or one whose exit costs are not the model's.
        """
        import keras_anytime.applications  # noqa: F401  registers the layers of every family

        path = os.fspath(path)
        with open(path + SIDECAR_SUFFIX) as f:
            sidecar = json.load(f)
        if sidecar.get("format") != _FORMAT or sidecar.get("version") != 1:
            raise ValueError(f"{path + SIDECAR_SUFFIX} is not an early-exit sidecar (version 1).")
        predictor = cls(
            keras.saving.load_model(path, compile=False), from_logits=sidecar["from_logits"]
        )
        if sidecar["exit_macs"] != [int(m) for m in predictor.exit_macs]:
            raise ValueError(
                f"{path + SIDECAR_SUFFIX} lists exit costs {sidecar['exit_macs']}, but the "
                f"model in {path} costs {predictor.exit_macs.tolist()}: the files do not "
                "belong together."
            )
        predictor.thresholds = sidecar["thresholds"]
        table = sidecar.get("budgets")
        if table is None and sidecar["budget"] is not None:
            table = [{"budget": sidecar["budget"], "thresholds": sidecar["thresholds"]}]
        predictor._set_table(table or [])
        return predictor
