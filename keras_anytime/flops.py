"""Exact multiply-accumulate (MAC) counts per exit, from the layers' shapes.

Counted: convolutions (standard, depthwise, separable, transposed) and Dense layers, the
layers whose cost grows with the product of their input and output sizes. Element-wise
layers (BatchNorm, activations, Add, pooling, normalisation) count 0, as in the MSDNet and
ResNet papers' FLOP figures.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from keras_anytime import graph

__all__ = ["exit_flops", "layer_macs", "msdnet_reference_counts", "node_macs"]

_ELEMENTWISE = (
    layers.BatchNormalization,
    layers.Normalization,
    layers.Activation,
    layers.ReLU,
    layers.Add,
    layers.Concatenate,
    layers.Identity,
    layers.Dropout,
    layers.InputLayer,
    layers.Rescaling,
    layers.ZeroPadding2D,
    layers.Cropping2D,
    layers.Flatten,
    layers.Reshape,
    layers.UpSampling2D,
    layers.Resizing,
    layers.Multiply,
    layers.Softmax,
    layers.Average,
    layers.Maximum,
)
_POOLING = (
    layers.MaxPooling2D,
    layers.AveragePooling2D,
    layers.GlobalAveragePooling2D,
    layers.GlobalMaxPooling2D,
)


def layer_macs(layer, input_shape: tuple, output_shape: tuple) -> int:
    """MACs of one call of `layer` on one sample.

    Args:
        layer: the Keras layer.
        input_shape: the call's input shape, batch axis included.
        output_shape: the call's output shape, batch axis included.

    Raises:
        NotImplementedError: a layer with weights that has no MAC formula here.
    """
    if isinstance(layer, (layers.DepthwiseConv2D,)):
        kernel = math.prod(layer.kernel_size)
        return math.prod(output_shape[1:]) * kernel
    if isinstance(layer, layers.SeparableConv2D):
        kernel = math.prod(layer.kernel_size)
        cin = input_shape[-1]
        spatial = math.prod(output_shape[1:-1])
        return spatial * cin * layer.depth_multiplier * (kernel + output_shape[-1])
    if isinstance(layer, layers.Conv2DTranspose):
        return math.prod(input_shape[1:]) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        kernel = math.prod(layer.kernel_size)
        cin = input_shape[-1] // layer.groups
        return math.prod(output_shape[1:]) * kernel * cin
    if isinstance(layer, layers.Dense):
        return math.prod(input_shape[1:]) * layer.units
    if isinstance(layer, _ELEMENTWISE + _POOLING):
        return 0
    if not getattr(layer, "weights", None):  # weightless layers and operations (x * y)
        return 0
    raise NotImplementedError(
        f"No MAC formula for layer {layer.name!r} of type {type(layer).__name__}; add one "
        "to keras_anytime.flops.layer_macs."
    )


def node_macs(node, layer=None) -> int:
    """MACs of one layer call, on one sample.

    Args:
        node: the Keras `Node` of the call.
        layer: the layer whose formula counts it. Defaults to None (the node's operation).

    Raises:
        ValueError: a dynamic shape (build the model with a fixed input shape).
    """
    layer = node.operation if layer is None else layer
    shapes = [tuple(t.shape) for t in node.input_tensors] or [tuple(node.output_tensors[0].shape)]
    out_shape = tuple(node.output_tensors[0].shape)
    if any(d is None for s in (shapes[0], out_shape) for d in s[1:]):
        raise ValueError(
            f"Layer {layer.name!r} has a dynamic shape {shapes[0]} -> "
            f"{out_shape}; build the model with a fixed input_shape to count MACs."
        )
    return layer_macs(layer, shapes[0], out_shape)


def _calls_macs(output, cache: dict, lazy: bool) -> dict:
    """{key: MACs} of every layer call that `output` depends on (`graph.layer_calls`);
    `cache` keeps each node's count across outputs."""
    found = {}
    for key, node in graph.layer_calls(output, lazy).items():
        if id(node) not in cache:
            cache[id(node)] = node_macs(node)
        found[key] = cache[id(node)]
    return found


def exit_flops(
    model: keras.Model, *, include_earlier_exits: bool = False, lazy: bool = False
) -> list[int]:
    """Cumulative MACs for one image at each output, in output order.

    Exit k's count covers every layer on the path from the input to exit k (its head
    included), and not the heads of other exits. With `include_earlier_exits=True` it
    also covers everything exits 1..k-1 need (their heads included): the cost of an
    anytime run that evaluates every exit on the way, as the MSDNet reference counts.
    Models nested as layers count the part of their graph that the output needs.

    Args:
        model: a model with fixed input shape, outputs ordered shallow to deep.
        include_earlier_exits: also count everything exits 1..k-1 need. Defaults to False.
        lazy: count only what each exit reads, not the work that the anytime order runs
            before it (`layers.RunAfter`: the other scales of an MSDNet block), which a
            lazy run defers to the first later exit that reads it; with
            `include_earlier_exits` too, this is what `EarlyExitPredictor` runs up to exit
            k (its `exit_macs`). Defaults to False.

    Raises:
        ValueError: a layer of dynamic shape on the way to an output.

    Example:

    ```python
    model = keras_anytime.AnytimeResNet20()
    exit_flops(model)  # 9 ints: the MACs of one image at exits 1..9
    ```
    """
    cache: dict[int, int] = {}
    if not include_earlier_exits:
        return [sum(_calls_macs(out, cache, lazy).values()) for out in model.outputs]
    seen: dict[tuple, int] = {}
    totals = []
    for out in model.outputs:
        seen.update(_calls_macs(out, cache, lazy))
        totals.append(sum(seen.values()))
    return totals


def msdnet_reference_counts(model: keras.Model) -> list[tuple[int, int]]:
    """(operations, parameters) at each exit of an MSDNet, as the reference counts them.

    The counting of the reference's `op_counter.py` (`measure_model`), to compare with the
    figures it prints.

    Both are cumulative over everything run before exit k's Dense, earlier exits
    included. Operations: convolution MACs (`exit_flops(model,
    include_earlier_exits=True)`), plus one per ReLU output, kernel-size ones per max
    pooling output, the head pooling's input size (the reference's AvgPool2d(2) on 2x2)
    and the Dense bias. Parameters: trainable ones, plus the bias that the reference's
    ImageNet stem conv has and ours leaves out (BatchNorm follows it).

    Args:
        model: an `MSDNet` with a top.
    """
    imagenet = any(layer.name == "stem_pool" for layer in model.layers)
    stem_bias = model.get_layer("stem_s1_conv").filters if imagenet else 0
    macs = exit_flops(model, include_earlier_exits=True)
    seen: dict[tuple, object] = {}
    counts = []
    for out, exit_macs in zip(model.outputs, macs):
        seen.update(graph.layer_calls(out))
        ops, params = exit_macs, stem_bias
        for node in seen.values():
            layer, out_shape = node.operation, node.output_tensors[0].shape
            if isinstance(layer, layers.ReLU):
                ops += math.prod(out_shape[1:])
            elif isinstance(layer, layers.MaxPooling2D):
                ops += math.prod(out_shape[1:]) * math.prod(layer.pool_size)
            elif isinstance(layer, layers.GlobalAveragePooling2D):
                ops += math.prod(node.input_tensors[0].shape[1:])
            elif isinstance(layer, layers.Dense):
                ops += layer.units
            params += sum(math.prod(w.shape) for w in layer.trainable_weights)
        counts.append((ops, params))
    return counts
