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
    """MACs of one call of `layer` on one sample; shapes include the batch axis."""
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
    if not layer.weights:
        return 0
    raise NotImplementedError(
        f"No MAC formula for layer {layer.name!r} of type {type(layer).__name__}; add one "
        "to keras_anytime.flops.layer_macs."
    )


def _node(tensor):
    operation, node_index, _ = tensor._keras_history
    return operation._inbound_nodes[node_index]


def _ancestor_macs(output, cache: dict) -> dict:
    """{id(node): macs} for every node that `output` depends on (itself included)."""
    found: dict[int, int] = {}
    stack = [_node(output)]
    while stack:
        node = stack.pop()
        key = id(node)
        if key in found:
            continue
        if key not in cache:
            shapes = [tuple(t.shape) for t in node.input_tensors] or [
                tuple(node.output_tensors[0].shape)
            ]
            out_shape = tuple(node.output_tensors[0].shape)
            if any(d is None for s in (shapes[0], out_shape) for d in s[1:]):
                raise ValueError(
                    f"Layer {node.operation.name!r} has a dynamic shape {shapes[0]} -> "
                    f"{out_shape}; build the model with a fixed input_shape to count MACs."
                )
            cache[key] = layer_macs(node.operation, shapes[0], out_shape)
        found[key] = cache[key]
        stack.extend(_node(t) for t in node.input_tensors)
    return found


def exit_flops(model: keras.Model) -> list[int]:
    """Cumulative MACs for one image at each output, in output order.

    Exit k's count covers every layer on the path from the input to exit k (its head
    included), and not the heads of other exits.
    """
    cache: dict[int, int] = {}
    return [sum(_ancestor_macs(out, cache).values()) for out in model.outputs]
