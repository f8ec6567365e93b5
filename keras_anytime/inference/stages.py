"""Cutting a multi-exit functional model into early-exit stages, one per exit, and
compiling each for the backend (`EarlyExitPredictor` runs them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_anytime import graph
from keras_anytime.flops import node_macs
from keras_anytime.layers import RunAfter

__all__ = ["Stage", "compiled", "cut", "stage_macs", "take_rows"]


@dataclass
class Stage:
    """One early-exit stage: the layer calls that one exit needs and no earlier exit does.

    Args:
        fn: `fn(inputs)` -> [exit probabilities (b, classes), the exit's output as the
            model computes it, *handed-on tensors]: `post` of `model`, compiled for the
            backend (`compiled`).
        model: the functional sub-model over the original layers.
        reads: the state keys of its inputs, in order.
        writes: the state key of each of `fn`'s outputs (None: not needed later).
        macs: MACs of one image through this stage alone.
    """

    fn: Callable
    model: keras.Model
    reads: list[int]
    writes: list[int | None]
    macs: int


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
    a nested model `m` are renamed `{prefix}{m.name}__{layer.name}`. A `RunAfter` call
    becomes its first input: its other inputs only order the graph."""

    def call(op, *args, **kwargs):
        if isinstance(op, RunAfter):
            return args[0][0]
        if isinstance(op, keras.Model) and hasattr(op, "_run_through_graph"):
            return op._run_through_graph(args[0], call_fn=_inliner(f"{prefix}{op.name}__"))
        if prefix:
            op = _Renamed(op, f"{prefix}{op.name}")
        return op(*args, **kwargs)

    return call


def take_rows(tensor, rows: np.ndarray):
    """`tensor[rows]`, in NumPy for the NumPy arrays that JAX stages return.

    Args:
        tensor: a backend tensor or a NumPy array, rows first.
        rows: the row numbers to keep.
    """
    return tensor[rows] if isinstance(tensor, np.ndarray) else ops.take(tensor, rows, axis=0)


def stage_macs(node) -> int:
    """MACs of one layer call of a stage graph (a renamed layer counts as itself).

    Args:
        node: the Keras `Node` of the call.
    """
    layer = node.operation
    return node_macs(node, layer.layer if isinstance(layer, _Renamed) else layer)


def compiled(sub: keras.Model, post: Callable) -> Callable:
    """A stage's function, `post(outputs of sub)`, compiled where that pays.

    TensorFlow: a `tf.function` that accepts any batch size (one trace after the second
    size). JAX: `jax.jit` of `sub.stateless_call`, the images padded to the next power of
    two, so that the varying count of images still in flight compiles at most
    log2(batch) + 1 shapes (inference-mode layers treat rows independently, so padding
    changes no result); the NumPy arrays it returns are gathered in NumPy. PyTorch: eager,
    since `torch.compile` compiles for longer than a predictor runs and recompiles on the
    changing counts of images in flight (benchmarks/README.md, "Early-exit inference").

    Args:
        sub: the stage's functional sub-model.
        post: `post(flat outputs of sub)` -> [probabilities, *outputs].
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


def _stage_nodes(exits: list) -> list[dict]:
    """The layer calls of each stage: those exit k needs that exits 1..k-1 do not."""
    done: dict[tuple, object] = {}
    stage_nodes = []
    for k, out in enumerate(exits, start=1):
        new = {i: n for i, n in graph.layer_calls(out).items() if i not in done}
        if not new:
            raise ValueError(
                f"Exit {k} needs nothing beyond exits 1..{k - 1}: the outputs must be "
                "ordered shallow to deep, each exit with its own head."
            )
        done.update(new)
        stage_nodes.append(new)
    return stage_nodes


def _crossings(flat_input, stage_nodes: list[dict]) -> tuple[dict, dict, list[list[int]]]:
    """The tensors that cross a stage boundary, keyed 0, 1, ... (0: the input image):
    ({id(tensor): key}, {key: tensor}, the keys each stage reads)."""
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
    return keys, tensors, reads


def cut(model: keras.Model, post: Callable) -> list[Stage]:
    """The stages of `model`, one per exit.

    A flat copy of its graph (nested functional models expanded into their layers) is cut
    so that stage k holds the layer calls exit k reads that no earlier exit reads.

    The cut is lazy: work that the model's anytime order runs before an exit without the
    exit reading it (`RunAfter`: the finer scales of an MSDNet block) waits for the
    first later exit that reads it, so an image that leaves early never pays for it; on
    the zoo's MSDNet that makes exit 1, and every early exit, cheaper
    (benchmarks/README.md, "Exported early exit").

    Args:
        model: a functional model with one input and outputs ordered shallow to deep.
        post: `post(outputs)` turns a stage sub-model's outputs into [probabilities,
            *outputs].

    Raises:
        ValueError: an exit that needs nothing beyond the earlier exits.
    """
    source = model.inputs[0]
    flat_input = keras.Input(batch_shape=source.shape, dtype=source.dtype)
    exits = list(model._run_through_graph([flat_input], call_fn=_inliner("")))
    stage_nodes = _stage_nodes(exits)
    keys, tensors, reads = _crossings(flat_input, stage_nodes)
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
            name=f"{model.name}_stage_{k + 1}",
        )
        out_key = keys.get(id(out))
        stages.append(
            Stage(
                fn=compiled(sub, post),
                model=sub,
                reads=reads[k],
                # [probabilities, the exit's raw output, *handed]: a later stage that
                # reads the exit gets it as the model computes it (logits stay logits)
                writes=[None, out_key if out_key in later else None]
                + [keys[id(t)] for t in handed],
                macs=sum(stage_macs(n) for n in nodes.values()),
            )
        )
    return stages
