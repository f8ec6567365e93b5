"""Early-exit inference: run a multi-exit model stage by stage and stop each image at the
first exit confident enough, so easy images cost less compute than hard ones.

`EarlyExitPredictor(model)` cuts the model into stages, one per exit: stage k computes
what exit k needs that stages 1..k-1 did not compute, then exit k's head. Each image
leaves at the first exit k whose largest class probability is >= `thresholds[k-1]`; the
last exit takes every image left. Later stages run only on the images still in.

Thresholds come from `calibrate` (budgeted mode: the MSDNet procedure, Huang et al.,
ICLR 2018) or are set by hand; `predict_at(x, k)` runs exits 1..k only (anytime mode).

Costs are MACs of one image (`keras_anytime.flops`). An image leaving at exit k costs
`exit_macs[k-1]`: everything stages 1..k run, the heads of exits 1..k included, as
`exit_flops(model, include_earlier_exits=True)[k-1]` counts it.

Saved form (`save(path)`): the model as the `.keras` file `path`, and a JSON sidecar
`path + ".early_exit.json"`:

    {"format": "keras_anytime.early_exit", "version": 1,
     "num_exits": K, "exit_macs": [K ints, cumulative MACs of one image],
     "thresholds": [K - 1 floats in [0, 1], for exits 1..K-1],
     "from_logits": bool, "budget": float in (0, 1] or null (thresholds set by hand)}
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_anytime.flops import _node_macs

SIDECAR_SUFFIX = ".early_exit.json"
_FORMAT = "keras_anytime.early_exit"


@dataclass
class _Stage:
    """One stage: `fn(inputs)` -> [exit probabilities (b, classes), the exit's output as
    the model computes it, *handed-on tensors]."""

    fn: Callable
    reads: list[int]  # state keys of its inputs, in order
    writes: list[int | None]  # state key of each output (None: not needed later)
    macs: int  # MACs of one image through this stage alone


class _Renamed(keras.layers.Layer):
    """`layer` called under another name, with the same weights (no copy): the layers of
    a nested model join a stage graph this way, since names must be unique there."""

    def __init__(self, layer: keras.layers.Layer, name: str):
        super().__init__(name=name, dtype=layer.dtype_policy)
        self.layer = layer

    def call(self, inputs, training=None, **kwargs):
        return self.layer(inputs, training=training, **kwargs)


def _inliner(prefix: str) -> Callable:
    """A `call_fn` for `Function._run_through_graph` that calls each operation
    symbolically, expanding nested functional models into their layers; the layers of
    a nested model `m` are renamed `{prefix}{m.name}__{layer.name}`."""

    def call(op, *args, **kwargs):
        if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph"):
            return op._run_through_graph(args[0], call_fn=_inliner(f"{prefix}{op.name}__"))
        if prefix:
            op = _Renamed(op, f"{prefix}{op.name}")
        return op(*args, **kwargs)

    return call


def _producer(tensor):
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def _ancestors(output) -> dict[int, object]:
    """{id(node): node} of every layer call that `output` depends on, inputs excluded."""
    found, stack = {}, [output]
    while stack:
        node = _producer(stack.pop())
        if node.is_input or id(node) in found:
            continue
        found[id(node)] = node
        stack.extend(node.input_tensors)
    return found


def _take_rows(tensor, rows: np.ndarray):
    """`tensor[rows]`, in NumPy for the NumPy arrays that JAX stages return."""
    return tensor[rows] if isinstance(tensor, np.ndarray) else ops.take(tensor, rows, axis=0)


def _macs(node) -> int:
    layer = node.operation
    return _node_macs(node, layer.layer if isinstance(layer, _Renamed) else layer)


def _compiled(sub: keras.Model, post: Callable) -> Callable:
    """A stage's function, `post(outputs of sub)`, compiled where that pays.

    TensorFlow: a `tf.function` that accepts any batch size (one trace after the second
    size). JAX: `jax.jit` of `sub.stateless_call`, the images padded to the next power of
    two, so that the varying count of images still in flight compiles at most
    log2(batch) + 1 shapes (inference-mode layers treat rows independently, so padding
    changes no result); the NumPy arrays it returns are gathered in NumPy. PyTorch: eager,
    since `torch.compile` took 40-120 s per model and recompiled on the changing counts of
    images in flight (benchmarks/README.md, "Early-exit inference").
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(
            lambda inputs: post(keras.tree.flatten(sub(inputs, training=False))),
            reduce_retracing=True,
        )
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, inputs):
            outputs, _ = sub.stateless_call(trainable, non_trainable, inputs, training=False)
            return post(keras.tree.flatten(outputs))

        jitted = jax.jit(pure)

        def call(inputs):
            # NumPy outside the jitted function: eager jax.numpy pads, slices and gathers
            # would compile one small program per count of images.
            inputs = [np.asarray(x) for x in inputs]
            n = inputs[0].shape[0]
            size = 1 << max(n - 1, 0).bit_length()
            padded = [np.pad(x, [(0, size - n)] + [(0, 0)] * (x.ndim - 1)) for x in inputs]
            outputs = jitted(
                [v.value for v in sub.trainable_variables],
                [v.value for v in sub.non_trainable_variables],
                padded,
            )
            return [np.asarray(o)[:n] for o in outputs]

        return call
    return lambda inputs: post(keras.tree.flatten(sub(inputs, training=False)))


def exit_proportions(p: float, num_exits: int) -> np.ndarray:
    """The MSDNet target share of images leaving at each exit, q_k ∝ p^k, k = 1..K (K,)."""
    logits = np.log(p) * np.arange(1, num_exits + 1)
    q = np.exp(logits - logits.max())
    return q / q.sum()


def thresholds_for(confidence: np.ndarray, proportions: np.ndarray) -> np.ndarray:
    """Thresholds (K - 1,) that send about `proportions[k-1]` of the images to exit k.

    The MSDNet reference's `dynamic_eval_find_threshold`: at exit k, among the images not
    gone yet, sorted by confidence (their largest class probability, `confidence` (K, N)),
    the threshold is the confidence of the floor(N * q_k)-th one (the last one's when
    fewer are left); 1.0 when that count is 0 (then only images of confidence exactly 1.0
    leave).
    """
    num_exits, n = confidence.shape
    gone = np.zeros(n, dtype=bool)
    thresholds = np.ones(num_exits - 1)
    for k in range(num_exits - 1):
        count = math.floor(n * proportions[k])
        order = np.argsort(-confidence[k], kind="stable")
        remaining = order[~gone[order]]
        if count > 0 and len(remaining):
            thresholds[k] = confidence[k, remaining[min(count, len(remaining)) - 1]]
        gone |= confidence[k] >= thresholds[k]
    return thresholds


def assign_exits(confidence: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The exit (1-based, (N,)) each image leaves at: the first k with
    confidence[k-1] >= thresholds[k-1], else the last."""
    passed = confidence[:-1] >= np.asarray(thresholds)[:, None]
    return np.where(passed.any(axis=0), passed.argmax(axis=0) + 1, confidence.shape[0])


def _check_probabilities(probs: np.ndarray, from_logits: bool) -> None:
    """Raise unless every exit's rows of `probs` (K, N, classes) are finite distributions."""
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


class EarlyExitPredictor:
    """Early-exit inference for a multi-exit functional model (any keras-anytime family).

    Args:
        model: a functional model with outputs `exit_1 … exit_K` (K >= 2, shallow to
            deep), each (batch, classes), one input with a fixed shape. Its layers are
            used as they are (shared weights).
        from_logits: the exits output logits (`classifier_activation=None`); a softmax
            then gives the probabilities. False (default): they output probabilities.

    Stages: the model's graph is walked from each exit back to the input, with nested
    functional models (the members of an `EANN`) expanded into their layers, so an exit
    inside a member cuts the member too. Stage k holds the layer calls exit k needs that
    no earlier exit needs; it is a functional sub-model over the original layers whose
    inputs are the tensors of earlier stages it reads (for MSDNet, every scale of the
    previous block; for EANN, also the input image) and whose outputs are exit k's
    probabilities and the tensors later stages read.

    Compilation: on TensorFlow each stage runs as a `tf.function` with reduce_retracing
    (one graph for every batch size). On 2 CPU cores (AnytimeResNet-20) that is 1.7x the
    images/s of calling the stages eagerly at batch 256 and 8x at batch 1; XLA
    (`jit_compile`) was slower, as it compiles again for every count of images left.
    On JAX each stage is `jax.jit`-compiled over power-of-two paddings of the images
    left (see `_compiled`); on PyTorch the stages run eagerly.

    Thresholds start at 1.0 (only images of confidence exactly 1.0 leave early) until
    `calibrate` or an assignment to `thresholds` sets them.

    Attributes:
        exit_macs: (K,) int, MACs of one image that leaves at exit k (cumulative, the
            earlier exits' heads included; equals `exit_flops(model,
            include_earlier_exits=True)`).
        budget: the budget of the last `calibrate` (fraction of `exit_macs[-1]`), or
            None when the thresholds were set by hand.
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
        self._stages = self._cut()
        self.exit_macs = np.cumsum([s.macs for s in self._stages]).astype(np.int64)
        self._thresholds = np.ones(self.num_exits - 1)
        self.budget: float | None = None

    def _cut(self) -> list[_Stage]:
        """Cut a flat copy of the graph (nested functional models expanded) into stages."""
        source = self.model.inputs[0]
        flat_input = keras.Input(batch_shape=source.shape, dtype=source.dtype)
        exits = list(self.model._run_through_graph([flat_input], call_fn=_inliner("")))
        # Layer calls of each stage: those exit k needs that exits 1..k-1 do not.
        done: dict[int, object] = {}
        stage_nodes = []
        for k, out in enumerate(exits, start=1):
            new = {i: n for i, n in _ancestors(out).items() if i not in done}
            if not new:
                raise ValueError(
                    f"Exit {k} needs nothing beyond exits 1..{k - 1}: the outputs must be "
                    "ordered shallow to deep, each exit with its own head."
                )
            done.update(new)
            stage_nodes.append(new)
        # Tensors that cross a stage boundary, keyed 0, 1, ... (0: the input image).
        keys = {id(flat_input): 0}
        tensors = {0: flat_input}
        reads = []
        for nodes in stage_nodes:
            made = {id(t) for n in nodes.values() for t in n.output_tensors}
            needed: dict[int, object] = {}
            for node in nodes.values():
                needed.update((id(t), t) for t in node.input_tensors if id(t) not in made)
            for i, t in needed.items():
                if i not in keys:
                    keys[i] = len(keys)
                    tensors[keys[i]] = t
            reads.append([keys[i] for i in needed])
        stages = []
        for k, (nodes, out) in enumerate(zip(stage_nodes, exits)):
            made = {id(t) for n in nodes.values() for t in n.output_tensors}
            later = {key for r in reads[k + 1 :] for key in r}
            handed = [
                tensors[key]
                for key in sorted(later)
                if id(tensors[key]) in made and tensors[key] is not out
            ]
            sub = keras.Model(
                [tensors[key] for key in reads[k]],
                [out, *handed],
                name=f"{self.model.name}_stage_{k + 1}",
            )
            out_key = keys.get(id(out))
            stages.append(
                _Stage(
                    fn=_compiled(sub, self._post),
                    reads=reads[k],
                    # [probabilities, the exit's raw output, *handed]: a later stage that
                    # reads the exit gets it as the model computes it (logits stay logits)
                    writes=[None, out_key if out_key in later else None]
                    + [keys[id(t)] for t in handed],
                    macs=sum(_macs(n) for n in nodes.values()),
                )
            )
        return stages

    def _post(self, outputs: list) -> list:
        """[probabilities, *outputs] from a stage sub-model's outputs."""
        probs = ops.cast(outputs[0], "float32")
        return [ops.softmax(probs) if self.from_logits else probs, *outputs]

    @property
    def thresholds(self) -> np.ndarray:
        """(K - 1,) floats in [0, 1]: an image leaves at exit k < K when its largest class
        probability there is >= thresholds[k-1]; exit K takes every image left. A copy;
        assign a new sequence to change them (this clears `budget`)."""
        return self._thresholds.copy()

    @thresholds.setter
    def thresholds(self, values: Sequence[float]) -> None:
        self._thresholds = self._checked_thresholds(values)
        self.budget = None

    def _checked_thresholds(self, values) -> np.ndarray:
        k = self.num_exits
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
                    key: v if stay is None else _take_rows(v, stay)
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

    def predict(self, x: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Early-exit prediction of images `x` (N, H, W, C) (raw model input).

        Returns:
            probabilities: (N, classes) float32, those of the exit each image left at.
            exits: (N,) int64, that exit, 1-based.
        """
        x = self._checked_x(x, batch_size)
        return self._gather(self._walk(x, batch_size, self._thresholds, self.num_exits), len(x))

    def predict_at(self, x: np.ndarray, exit: int, batch_size: int = 256) -> np.ndarray:
        """Exit `exit`'s (1-based) probabilities (N, classes) for every image, running
        stages 1..exit only (anytime mode)."""
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
        """Every exit's probabilities for every image, (K, N, classes) float32, computed
        by the stages (each image runs through all of them)."""
        x = self._checked_x(x, batch_size)
        out = np.zeros((self.num_exits, len(x), self.classes), np.float32)
        for k, p, rows, _ in self._walk(x, batch_size, None, self.num_exits):
            out[k - 1, rows] = p
        return out

    def average_macs(self, exits: np.ndarray) -> float:
        """Mean MACs per image of images that left at `exits` (N,), 1-based."""
        exits = np.asarray(exits)
        if exits.size == 0 or exits.min() < 1 or exits.max() > self.num_exits:
            raise ValueError(f"exits must be a non-empty array of values in 1..{self.num_exits}.")
        return float(np.mean(self.exit_macs[exits.astype(np.int64) - 1]))

    def calibrate(
        self, x_val: np.ndarray, y_val: np.ndarray, budget: float, batch_size: int = 256
    ) -> dict:
        """Fit the thresholds on held-out images so that the mean MACs per image is
        `budget` (in (0, 1]) times the full network's (`exit_macs[-1]`), or just below.

        The MSDNet procedure (Huang et al., ICLR 2018; the reference's dynamic
        evaluation): target exit shares q_k ∝ p^k (`exit_proportions`), thresholds from
        the sorted confidences of the images still in (`thresholds_for`). p is found by
        bisection on log p so that the mean cost on `x_val` under those thresholds meets
        the budget (the largest p that does), rather than on a grid of p.

        Args:
            x_val: (N, H, W, C) images; y_val: (N,) integer labels (for the report).
            budget: fraction of the full network's MACs, at least `exit_macs[0] /
                exit_macs[-1]` (every image leaving at exit 1).

        Returns:
            On `x_val`: {"budget", "p", "thresholds" (K - 1 floats), "average_macs",
            "macs_fraction", "accuracy" (top-1, 0..1), "exit_fractions" (K floats)}.
        """
        if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)):
            raise ValueError(f"budget must be a number in (0, 1], got {budget!r}.")
        budget = float(budget)
        floor = float(self.exit_macs[0] / self.exit_macs[-1])
        if not 0.0 < budget <= 1.0:
            raise ValueError(
                f"budget is a fraction of the full network's MACs in (0, 1], got {budget}."
            )
        if budget < floor:
            raise ValueError(
                f"budget={budget} is below the cost of exit 1 alone ({floor:.4f} of the full "
                f"network, {int(self.exit_macs[0])} MACs): no thresholds can meet it."
            )
        x_val = self._checked_x(x_val, batch_size)
        y_val = np.asarray(y_val).reshape(-1)
        if len(x_val) != len(y_val):
            raise ValueError(f"x_val has {len(x_val)} images but y_val has {len(y_val)} labels.")
        if len(x_val) == 0:
            raise ValueError("calibrate needs at least one image.")
        probs = self.exit_probabilities(x_val, batch_size)
        _check_probabilities(probs, self.from_logits)
        # float32 softmax can round a hair past 1; thresholds are probabilities in [0, 1]
        confidence = np.clip(probs.max(axis=2), 0.0, 1.0)
        target = budget * float(self.exit_macs[-1])

        def fit(log_p: float) -> tuple[np.ndarray, np.ndarray]:
            t = thresholds_for(confidence, exit_proportions(math.exp(log_p), self.num_exits))
            return t, assign_exits(confidence, t)

        lo, hi = -50.0, 50.0  # all images at exit 1 .. all at exit K, for any N < e^50
        best = fit(hi)
        if self.average_macs(best[1]) > target:
            best = fit(lo)
            for _ in range(50):
                mid = 0.5 * (lo + hi)
                candidate = fit(mid)
                if self.average_macs(candidate[1]) <= target:
                    lo, best = mid, candidate
                else:
                    hi = mid
            log_p = lo
        else:
            log_p = hi
        thresholds, exits = best
        self._thresholds = self._checked_thresholds(thresholds)  # what `load` accepts
        self.budget = budget
        predicted = probs[exits - 1, np.arange(len(exits))].argmax(axis=1)
        mean = self.average_macs(exits)
        return {
            "budget": budget,
            "p": math.exp(log_p),
            "thresholds": thresholds.tolist(),
            "average_macs": mean,
            "macs_fraction": mean / float(self.exit_macs[-1]),
            "accuracy": float(np.mean(predicted == y_val)),
            "exit_fractions": (
                np.bincount(exits, minlength=self.num_exits + 1)[1:] / len(exits)
            ).tolist(),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Save the model to `path` (a `.keras` file) and the thresholds and costs to
        `path + ".early_exit.json"` (format in the module docstring)."""
        path = os.fspath(path)
        self.model.save(path)
        sidecar = {
            "format": _FORMAT,
            "version": 1,
            "num_exits": self.num_exits,
            "exit_macs": [int(m) for m in self.exit_macs],
            "thresholds": self._thresholds.tolist(),
            "from_logits": self.from_logits,
            "budget": self.budget,
        }
        with open(path + SIDECAR_SUFFIX, "w") as f:
            json.dump(sidecar, f, indent=2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EarlyExitPredictor:
        """Load a predictor written by `save(path)`; checks the sidecar against the model."""
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
        predictor.budget = sidecar["budget"]
        return predictor
