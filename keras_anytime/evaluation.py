"""Per-exit evaluation and the anytime curve (accuracy against cumulative MACs)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_anytime.flops import exit_flops

__all__ = [
    "evaluate_exits",
    "exit_predictions",
    "format_table",
    "plot_anytime_curves",
    "relative_error_increase",
]


def _predict(model, images) -> list[np.ndarray]:
    preds = model.predict_on_batch(images)  # compiled (once per batch size)
    preds = preds if isinstance(preds, (list, tuple)) else [preds]
    return [np.asarray(ops.convert_to_numpy(p), dtype=np.float32) for p in preds]


def exit_predictions(model, dataset, flip: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Every exit's outputs (N, classes) over `dataset`, and the labels (N,).

    Args:
        model: a multi-exit model.
        dataset: an iterable of `(images, labels)` batches.
        flip: make each output the mean of the outputs for the image and its mirror
            image (flipped left to right), at two forward passes. Defaults to False.

    Raises:
        ValueError: an empty dataset.
    """
    width_axis = 2 if keras.config.image_data_format() == "channels_last" else 3
    outputs, labels = [], []
    for images, batch_labels in dataset:
        preds = _predict(model, images)
        if flip:
            mirrored = _predict(model, ops.flip(images, axis=width_axis))
            preds = [(a + b) / 2 for a, b in zip(preds, mirrored, strict=True)]
        outputs.append(preds)
        labels.append(np.asarray(ops.convert_to_numpy(batch_labels)))
    if not outputs:
        raise ValueError("The dataset is empty.")
    per_exit = [np.concatenate([batch[k] for batch in outputs]) for k in range(len(outputs[0]))]
    return per_exit, np.concatenate(labels)


def evaluate_exits(model, dataset, from_logits: bool = False, flip: bool = False) -> list[dict]:
    """Evaluate every exit over the whole `dataset`: one row per exit.

    Args:
        model: a multi-exit model of fixed input shape, exits ordered shallow to deep.
        dataset: an iterable of `(images, labels)` batches, integer labels.
        from_logits: the exits output logits (`classifier_activation=None`); the loss
            then applies a log-softmax. Defaults to False: probabilities.
        flip: flip test-time augmentation, each exit's output averaged over the image and
            its mirror image (logits averaged as logits); `macs` then counts both passes.
            Defaults to False.

    Returns:
        A list of dicts: `exit` (1-based), `macs` (cumulative, one image), `accuracy`
        (top-1, 0..1) and `loss` (mean cross-entropy).

    Raises:
        ValueError: outputs that are not probabilities without `from_logits`, or an empty
            dataset.

    Example:

    ```python
    val = keras_anytime.datasets.load("cifar10", "val", data_dir="data/cifar10")
    print(format_table(evaluate_exits(model, val), "val"))
    ```
    """
    outputs, labels = exit_predictions(model, dataset, flip=flip)
    macs = [(2 if flip else 1) * m for m in exit_flops(model)]
    rows = []
    for k, (p, m) in enumerate(zip(outputs, macs, strict=True), start=1):
        if from_logits:
            shifted = p - p.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        else:
            if p.min() < -1e-6 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
                raise ValueError(
                    f"Exit {k}'s outputs are not class probabilities: if the exits output "
                    "logits (classifier_activation=None), pass from_logits=True."
                )
            log_probs = np.log(np.clip(p, 1e-12, None))
        rows.append(
            {
                "exit": k,
                "macs": int(m),
                "accuracy": float(np.mean(np.argmax(p, axis=1) == labels)),
                "loss": float(-np.mean(log_probs[np.arange(len(labels)), labels])),
            }
        )
    return rows


def format_table(rows: Sequence[dict], split: str) -> str:
    """The per-exit table as aligned text: exit, MMACs, accuracy in %, loss.

    Args:
        rows: `evaluate_exits`'s rows.
        split: the split's name, for the accuracy column's header.
    """
    lines = [f"{'exit':>4}  {'MMACs':>9}  {split + ' acc %':>10}  {'loss':>7}"]
    for r in rows:
        mmacs, acc = r["macs"] / 1e6, 100 * r["accuracy"]
        lines.append(f"{r['exit']:>4}  {mmacs:>9.2f}  {acc:>10.2f}  {r['loss']:>7.4f}")
    return "\n".join(lines)


def relative_error_increase(errors: Sequence[float], opt_errors: Sequence[float]) -> list[float]:
    """The paper's metric: 100 * (error - OPT error) / OPT error at each point, in %.

    Args:
        errors: the errors at some points (exits).
        opt_errors: the OPT baselines' errors at the same points.

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(errors) != len(opt_errors):
        raise ValueError(f"Got {len(errors)} errors and {len(opt_errors)} OPT errors.")
    return [100.0 * (e - o) / o for e, o in zip(errors, opt_errors, strict=True)]


def plot_anytime_curves(curves: dict[str, Sequence[dict]], path: str, split: str = "val") -> None:
    """Save accuracy (%) against cumulative MMACs, one line per named model, as a PNG.

    Args:
        curves: {the line's label: `evaluate_exits`'s rows}.
        path: the PNG file to write.
        split: the split's name, for the axis label. Defaults to "val".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, rows in curves.items():
        ax.plot(
            [r["macs"] / 1e6 for r in rows],
            [100 * r["accuracy"] for r in rows],
            marker="o",
            label=label,
        )
    ax.set_xlabel("cumulative MACs per image (millions)")
    ax.set_ylabel(f"top-1 accuracy on {split} (%)")
    ax.set_title("Anytime prediction: accuracy at each exit")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
