"""Exporting an `EarlyExitPredictor` with its exit policy inside: a TensorFlow SavedModel
(and, from it, a LiteRT model) that takes images and a budget and returns each image's
probabilities and the exit it left at, running later stages only on the images still in.

The serving function is one TensorFlow graph with the budget table (`budget_table`: each
calibrated budget and its thresholds) and the weights as constants. It picks the
thresholds of the largest calibrated budget at or below the requested one; stage k runs
on the images left after exits 1..k-1, in a `tf.cond` that skips it (and every later
stage) when none is left; for a batch size of 1 (LiteRT's default) the `tf.cond`s branch
on the image's own confidence, with static shapes. Loading needs TensorFlow only:

    served = tf.saved_model.load(path)
    out = served.serve(images, tf.constant(0.5))  # or served.signatures["serving_default"]
    # {"probabilities": (N, classes), "exit": (N,) int32, 1-based, "budget": () float32}

The budget, a float32 scalar, is a fraction of the full network's MACs, as in
`EarlyExitPredictor.calibrate`. The artifact never fails on it: a budget below the
smallest calibrated one, 0, a negative one or NaN gets the smallest calibrated budget's
thresholds; one above 1 (or +inf) gets the largest's; the output "budget" is the
calibrated budget whose thresholds ran, so a caller sees when it differs from the request.
With thresholds set by hand (no calibrated budget) every budget gets them and the output
"budget" is NaN.

Each stage is traced as its own TensorFlow function with its weights frozen into it, so
a `tf.cond` hands on only the few tensors that flow between stages: with the weights as
variables every `tf.cond` would also take each later stage's variables as inputs (hundreds
on an MSDNet), and TensorFlow's runtime pays for every input of a `tf.cond` it runs
(benchmarks/README.md, "Exported early exit"). At batch size 1 the SavedModel's serving
function is compiled with XLA by default (`jit_compile`), the `tf.cond`s inside it: at batch
1 TensorFlow's runtime costs about as much per operation as the small convolutions do, and
XLA fuses them. The artifact is for inference only.

TensorFlow backend only (the stages are traced as TensorFlow graphs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import keras

__all__ = ["FORMATS", "export", "export_model", "frozen"]

FORMATS = ("tf_saved_model", "litert")


def frozen(model: keras.Model, batch_size: int | None = None) -> Callable:
    """`model`'s inference function as a TensorFlow function with its weights as constants.

    Args:
        model: a functional Keras model (TensorFlow backend).
        batch_size: the rows of the inputs it takes. Defaults to None (any).

    Returns:
        `fn(inputs)` -> the flat list of the model's outputs.
    """
    import tensorflow as tf

    # TensorFlow has no public name for this: it is what its LiteRT converter freezes with
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = [tf.TensorSpec((batch_size, *t.shape[1:]), t.dtype) for t in model.inputs]
    traced = tf.function(lambda *inputs: keras.tree.flatten(model(list(inputs), training=False)))
    fn = convert_variables_to_constants_v2(traced.get_concrete_function(*specs))
    return lambda inputs: fn(*inputs)


def _run_stage(predictor, calls: list, k: int, state: dict) -> tuple[list, dict]:
    """Stage k (`calls[k - 1]`, its frozen function) on `state` ({key: tensor}): its
    outputs ([probabilities, ...]) and the state that later stages read (this stage's
    writes added, what no later stage reads dropped)."""
    stages = predictor._stages
    stage = stages[k - 1]
    outputs = predictor._post(calls[k - 1]([state[key] for key in stage.reads]))
    state = {**state, **{key: v for key, v in zip(stage.writes, outputs) if key is not None}}
    needed = {key for s in stages[k:] for key in s.reads}
    return outputs, {key: v for key, v in state.items() if key in needed}


def _selector(predictor) -> Callable:
    """select(budget) -> (the K - 1 thresholds, the calibrated budget they belong to): the
    budget table's lookup as TensorFlow operations (module docstring: which entry a budget
    gets)."""
    import tensorflow as tf

    table = predictor.budget_table or [{"budget": math.nan, "thresholds": predictor.thresholds}]
    if len(table) == 1:
        # one entry needs no lookup: the thresholds stay Python floats, graph constants
        entry = table[0]
        return lambda budget: (
            [float(t) for t in entry["thresholds"]],
            tf.constant(entry["budget"], tf.float32),
        )

    def select(budget):
        budgets = tf.constant([e["budget"] for e in table], tf.float32)
        # a NaN budget compares false with every entry and gets the first, as 0 does
        i = tf.maximum(tf.reduce_sum(tf.cast(budgets <= budget, tf.int32)) - 1, 0)
        thresholds = tf.constant([e["thresholds"] for e in table], tf.float32)
        # gathers, not slices: XLA needs a slice's start at compile time, so a slice would
        # make the budget a compile-time constant, compiled again for each budget value
        chosen = tf.gather(thresholds, i)
        return tf.unstack(chosen, num=predictor.num_exits - 1), tf.gather(budgets, i)

    return select


def _serving_function(predictor, calls: list):
    """fn(images (N, H, W, C), budget ()) -> {"probabilities", "exit", "budget"}: the
    predictor's policy as TensorFlow operations."""
    import tensorflow as tf

    select = _selector(predictor)
    classes, last = predictor.classes, predictor.num_exits

    def run(k, state, rows, probs_out, exits_out, thresholds):
        outputs, state = _run_stage(predictor, calls, k, state)
        probs = outputs[0]
        if k == last:
            leave = tf.ones_like(rows, dtype=tf.bool)
        else:
            leave = tf.reduce_max(probs, axis=1) >= thresholds[k - 1]
        gone = tf.where(leave)[:, 0]
        at = tf.gather(rows, gone)[:, None]
        probs_out = tf.tensor_scatter_nd_update(probs_out, at, tf.gather(probs, gone))
        exits_out = tf.tensor_scatter_nd_update(
            exits_out, at, tf.fill(tf.shape(gone), tf.constant(k, tf.int32))
        )
        if k == last:
            return probs_out, exits_out
        stay = tf.where(tf.logical_not(leave))[:, 0]
        state = {key: tf.gather(v, stay) for key, v in state.items()}
        rows = tf.gather(rows, stay)
        return tf.cond(
            tf.size(stay) > 0,
            lambda: run(k + 1, state, rows, probs_out, exits_out, thresholds),
            lambda: (probs_out, exits_out),
        )

    def serve(images, budget):
        n = tf.shape(images)[0]
        thresholds, used = select(budget)
        probs, exits = run(
            1,
            {0: images},
            tf.range(n),
            tf.zeros([n, classes], tf.float32),
            tf.zeros([n], tf.int32),
            thresholds,
        )
        return {"probabilities": probs, "exit": exits, "budget": used}

    return serve


def _single_image_function(predictor, calls: list):
    """The policy for one image at a time: nested `tf.cond`s on exit k's confidence, with
    no gathers, so every shape is static (LiteRT's XNNPACK delegate then runs the stages)."""
    import tensorflow as tf

    select = _selector(predictor)
    last = predictor.num_exits

    def run(k, state, thresholds):
        outputs, state = _run_stage(predictor, calls, k, state)
        probs, exit_k = outputs[0], tf.constant([k], tf.int32)
        if k == last:
            return probs, exit_k
        return tf.cond(
            tf.reduce_max(probs) >= thresholds[k - 1],
            lambda: (probs, exit_k),
            lambda: run(k + 1, state, thresholds),
        )

    def serve(images, budget):
        thresholds, used = select(budget)
        probs, exits = run(1, {0: images}, thresholds)
        return {"probabilities": probs, "exit": exits, "budget": used}

    return serve


def export(
    predictor,
    path: str | os.PathLike,
    format: str = "tf_saved_model",
    batch_size: int | None = None,
    jit_compile: bool | None = None,
) -> None:
    """Write `predictor` (model, stages and budget table) to `path`.

    The artifact's `serve(images, budget)` (also the SavedModel's `serving_default`
    signature, for TensorFlow Serving and `saved_model_cli run`) takes the images and a
    float32 scalar budget and returns {"probabilities" (N, classes), "exit" (N,) int32,
    "budget" () float32}; the module docstring says which calibrated budget a requested
    one gets, a wrong one (negative, NaN, above 1) included.

    Args:
        predictor: an `EarlyExitPredictor`, calibrated at the budgets to serve (or with
            thresholds set by hand).
        path: where to write.
        format: "tf_saved_model" (a folder; `tf.saved_model.load(path).serve(images,
            budget)`) or "litert" (a `.tflite` file; the LiteRT interpreter's `serve`
            signature, inputs `images` and `budget`). Defaults to "tf_saved_model".
        batch_size: the serving signature's batch size; None: any (SavedModel). LiteRT
            defaults to 1. At batch size 1 the graph branches on the image's confidence
            with static shapes; otherwise it gathers the images still in at each stage.
        jit_compile: compile the SavedModel's serving function with XLA, `tf.cond`s
            included (it then compiles on its first call). Defaults to None: for batch
            size 1, where TensorFlow's runtime costs about as much per operation as a small
            convolution and XLA fuses the operations (benchmarks/README.md, "Exported early
            exit"). Other batch sizes gather to shapes that XLA cannot compile.

    Raises:
        ValueError: an unknown format, a backend other than TensorFlow, or `jit_compile`
            with LiteRT or a batch size other than 1.
    """
    signature, batch_size = _signature(predictor.model, format, batch_size)
    import tensorflow as tf

    signature.append(tf.TensorSpec((), tf.float32, name="budget"))
    jit_compile = _jit_compile(format, batch_size, jit_compile)
    if jit_compile and batch_size != 1:
        raise ValueError(
            f"jit_compile=True needs batch_size=1 (got {batch_size}): at other batch sizes "
            "the stages run on the images still in, a count that XLA cannot compile for."
        )
    calls = [frozen(stage.model, batch_size) for stage in predictor._stages]
    policy = _single_image_function if batch_size == 1 else _serving_function
    _write(policy(predictor, calls), signature, path, format, jit_compile)


def export_model(
    model: keras.Model,
    path: str | os.PathLike,
    format: str = "tf_saved_model",
    batch_size: int | None = None,
    jit_compile: bool | None = None,
) -> None:
    """Write a one-output `model` as `export` writes a predictor: the early exit's baseline.

    Frozen weights, the same endpoint, converter and XLA settings; `serve(images)` returns
    {"probabilities"}.

    Args:
        model: a functional model with one input and one output.
        path: where to write.
        format: "tf_saved_model" or "litert". Defaults to "tf_saved_model".
        batch_size: the serving batch size. Defaults to None (any; LiteRT: 1).
        jit_compile: XLA for the SavedModel. Defaults to None (at batch size 1).

    Raises:
        ValueError: an unknown format, a backend other than TensorFlow, or `jit_compile`
            with LiteRT.
    """
    signature, batch_size = _signature(model, format, batch_size)
    fn = frozen(model, batch_size)

    def serve(images):
        return {"probabilities": fn([images])[0]}

    _write(serve, signature, path, format, _jit_compile(format, batch_size, jit_compile))


def _jit_compile(format: str, batch_size: int | None, jit_compile: bool | None) -> bool:
    """Whether to XLA-compile the serving function: by default for a batch-1 SavedModel;
    raises for LiteRT, whose converter reads TensorFlow operations, not XLA's."""
    if jit_compile and format != "tf_saved_model":
        raise ValueError(
            f"jit_compile=True applies to format='tf_saved_model' only, not {format!r}: "
            "a LiteRT model runs its own kernels. Leave jit_compile unset."
        )
    if jit_compile is None:
        return format == "tf_saved_model" and batch_size == 1
    return jit_compile


def _signature(model: keras.Model, format: str, batch_size: int | None) -> tuple[list, int | None]:
    """The `serve` input signature for `model`'s images, and the batch size (LiteRT: 1 by
    default); raises on an unknown format or a backend other than TensorFlow."""
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}: use one of {FORMATS}.")
    if keras.config.backend() != "tensorflow":
        raise ValueError(
            f"Exporting traces the stages as TensorFlow graphs; this process runs the "
            f"{keras.config.backend()!r} backend. Run with KERAS_BACKEND=tensorflow."
        )
    import tensorflow as tf

    if format == "litert" and batch_size is None:
        batch_size = 1
    shape = (batch_size, *model.inputs[0].shape[1:])
    return [tf.TensorSpec(shape, model.inputs[0].dtype, name="images")], batch_size


def _write(
    serve: Callable, signature: list, path: str | os.PathLike, format: str, jit_compile: bool
) -> None:
    """`serve` as the `serve` endpoint of a SavedModel folder or a LiteRT file at `path`."""
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    # traced here, with the signature and XLA setting given, not wrapped by ExportArchive,
    # whose own wrapping makes a slower batch-1 graph (benchmarks/README.md, "Exported
    # early exit")
    serve = tf.function(serve, input_signature=signature, jit_compile=jit_compile)
    archive.add_endpoint("serve", serve)
    path = os.fspath(path)
    if format == "tf_saved_model":
        archive.write_out(path, verbose=False)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as saved:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serve"])
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
        with open(path, "wb") as f:
            f.write(converter.convert())
