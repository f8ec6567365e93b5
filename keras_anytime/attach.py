"""`attach_exits`: turn any Keras functional network into an anytime one by attaching exit
heads along its depth (the internal classifiers of Shallow-Deep Networks, Kaya et al.,
ICML 2019)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from keras_anytime.applications import base
from keras_anytime.models import AnytimeModel

__all__ = ["attach_exits"]


def attach_exits(
    backbone: keras.Model,
    at: Sequence[str] | None = None,
    *,
    every: int | None = None,
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    head: Callable | None = None,
    freeze_backbone: bool = False,
    name: str | None = None,
) -> AnytimeModel:
    """An `AnytimeModel` of `backbone` with exit heads along its depth and on its output.

    The exits are ordered shallow to deep.

    Args:
        backbone: a functional model with one input and one output, a 4-D feature map
            (batch, height, width, channels) such as `keras.applications.ResNet50(
            include_top=False, weights=None)`; it is used as it is (shared weights).
        at: names of layers of `backbone` whose outputs get an exit. Defaults to None
            (give `every` instead).
        every: instead of `at`, an exit after `Add` layers number every, 2 * every, ...
            (1-based, shallow to deep) of all but the deepest `Add`, whose block the
            output's exit stands for. `Add` layers end the residual blocks of ResNets,
            MobileNets, EfficientNets and this package's ResNets. Defaults to None.
        classes: every head's number of classes. Defaults to 10.
        classifier_activation: every head's activation; None for logits. Defaults to
            "softmax".
        head: `head(x, index, classes) -> (batch, classes)` builds exit `index`
            (1-based). Defaults to None: the builders' head (BN-ReLU, global average
            pooling, Dense), named `exit_{index}`.
        freeze_backbone: train only the heads (`backbone.trainable = False`). Defaults to
            False.
        name: the model's name. Defaults to None (`{backbone.name}_anytime`).

    Returns:
        An `AnytimeModel` with outputs `exit_1 … exit_K`, K = attachment points + 1, for
        AdaLoss, `flops.exit_flops`, `inference.EarlyExitPredictor` and saving.

    Raises:
        ValueError: a backbone that is not a functional model with one input and one
            4-D output, both or neither of `at` and `every`, or attachment points that
            are unknown, nested, the output itself or not 4-D.

    Example:

    ```python
    backbone = keras.applications.ResNet50(include_top=False, weights=None)
    model = keras_anytime.attach_exits(backbone, every=4, classes=1000)
    ```
    """
    if not hasattr(backbone, "_run_through_graph") or len(backbone.inputs) != 1:
        raise ValueError("attach_exits needs a functional model with one input.")
    if len(backbone.outputs) != 1 or len(backbone.outputs[0].shape) != 4:
        raise ValueError(
            "attach_exits needs a backbone with one 4-D output (batch, height, width, "
            f"channels), got outputs {[tuple(o.shape) for o in backbone.outputs]}: build it "
            "with include_top=False (and no pooling)."
        )
    if (at is None) == (every is None):
        raise ValueError("Pass exactly one of `at` (layer names) or `every` (an integer >= 1).")
    base.positive_int(classes, "classes")
    order = {id(layer): i for i, layer in enumerate(backbone.layers)}  # topological
    if every is not None:
        base.positive_int(every, "every")
        adds = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Add)]
        points = adds[:-1][every - 1 :: every]  # the output's exit stands for the last
        if not points:
            raise ValueError(
                f"every={every} leaves no attachment point: {backbone.name} has "
                f"{len(adds)} Add layers, the deepest of which the output's exit stands for. "
                f"Use every <= {max(len(adds) - 1, 1)}, or `at` with layer names."
            )
    else:
        points = _named_points(backbone, at, order)
    features = [layer.output for layer in points]
    if any(len(f.shape) != 4 for f in features):
        raise ValueError("Every attachment point must output a 4-D feature map.")
    features.append(backbone.outputs[0])
    if freeze_backbone:
        backbone.trainable = False
    make = head or (lambda x, k, n: base.exit_head(x, k, n, classifier_activation))
    exits = [make(x, k, classes) for k, x in enumerate(features, start=1)]
    return AnytimeModel(backbone.inputs, exits, name=name or f"{backbone.name}_anytime")


def _named_points(backbone: keras.Model, at: Sequence[str], order: dict) -> list:
    """The layers of `backbone` named in `at`, shallow to deep, or a ValueError naming the
    names that are unknown, inside a nested model, or the output itself."""
    known = {layer.name: layer for layer in backbone.layers}
    nested = {
        inner.name: layer.name
        for layer in backbone.layers
        if isinstance(layer, keras.Model)
        for inner in layer.layers
    }
    inside = {n: nested[n] for n in at if n not in known and n in nested}
    if inside:
        raise ValueError(
            f"Layers {sorted(inside)} are inside the nested model(s) "
            f"{sorted(set(inside.values()))} of {backbone.name}, whose inner outputs it "
            "cannot read: attach at layers of the outer model, or pass the nested model "
            "itself as the backbone."
        )
    missing = [n for n in at if n not in known]
    if missing:
        raise ValueError(f"No layers named {missing} in {backbone.name}.")
    output_layer = backbone.outputs[0]._keras_history[0]
    if any(known[n] is output_layer for n in at):
        raise ValueError(
            f"{output_layer.name!r} makes {backbone.name}'s output, which gets an exit "
            "already: attach only at layers before it."
        )
    chosen = {id(known[n]): known[n] for n in at}.values()
    return sorted(chosen, key=lambda layer: order[id(layer)])
