"""EANN: a sequence of exponentially deepening anytime networks.

Reference: Hu et al., "Learning Anytime Predictions in Neural Networks via Adaptive Loss
Balancing", AAAI 2019 (arXiv 1708.06832), the EANN of its last section: anytime networks
(ANNs) whose costs grow geometrically by a factor `base`, run one after the other at
test time. If member k costs c * base^(k-1), running members 1..K costs
c * (base^K - 1) / (base - 1) < base / (base - 1) * c * base^(K-1): the whole sequence
costs at most base / (base - 1) times its largest member (twice, for base 2), and any
budget B is within that factor of the budget of the deepest member that fits in B.

Here the members are `AnytimeResNet`s (CIFAR form, depth 6n + 2 with n_k = n_1 *
base^(k-1), so their costs grow by about `base`). Each member is its own `AnytimeModel`,
nested as layer `member_k` of the EANN, which exposes every member's exits in run order.
Member k starts after member k-1's last exit (`layers.RunAfter`, zero cost), so
`flops.exit_flops` counts the earlier members in each exit's cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from keras import layers

from keras_anytime import presets
from keras_anytime.applications import base as _base
from keras_anytime.applications.resnet import AnytimeResNet
from keras_anytime.layers import RunAfter
from keras_anytime.models import AnytimeModel

__all__ = ["EANN", "eann_members", "freeze_members_before", "member_depths"]


def member_depths(num_members: int, base: float, first_depth: int) -> list[int]:
    """CIFAR ResNet depths 6n + 2 whose unit counts n grow by `base`: (3, 2, 8) -> [8, 14, 26].

    Args:
        num_members: how many depths, >= 1.
        base: the growth factor of n from one member to the next (rounded half up), > 1.
        first_depth: the first member's depth, 6n + 2 with n >= 1.

    Raises:
        ValueError: an argument out of its range, or a base too close to 1 for the depths
            to grow.
    """
    _base.positive_int(num_members, "num_members")
    if isinstance(first_depth, bool) or not isinstance(first_depth, int):
        raise ValueError(f"first_depth must be an integer 6n+2, got {first_depth!r}.")
    if first_depth < 8 or (first_depth - 2) % 6:
        raise ValueError(
            f"first_depth={first_depth} is not a CIFAR ResNet depth: use 6n+2 with n >= 1 "
            "(8, 14, 20, 26, ...)."
        )
    if not isinstance(base, (int, float)) or not base > 1:
        raise ValueError(
            f"base must be a number > 1 (each member costs about `base` times the one "
            f"before), got {base!r}."
        )
    n_1 = (first_depth - 2) // 6
    units = [math.floor(n_1 * base**k + 0.5) for k in range(num_members)]
    if any(b <= a for a, b in zip(units, units[1:])):
        raise ValueError(
            f"base={base} is too close to 1 for first_depth={first_depth}: the members' "
            f"units per stage {units} do not grow. Use a larger base or first_depth."
        )
    return [6 * n + 2 for n in units]


def eann_members(model: keras.Model) -> list[AnytimeModel]:
    """The members of an EANN, shallow to deep, as `AnytimeModel`s.

    They share their layers with the EANN, so compiling and fitting member k (with its
    own AdaLoss) trains the EANN's member k.

    Args:
        model: an EANN, as `EANN()` builds it.

    Raises:
        ValueError: `model` has no members (it is not an EANN).
    """
    found = [
        layer
        for layer in model.layers
        if isinstance(layer, AnytimeModel) and layer.name.startswith("member_")
    ]
    if not found:
        raise ValueError(f"{model.name} has no members: build it with EANN().")
    return sorted(found, key=lambda m: int(m.name.rsplit("_", 1)[1]))


def freeze_members_before(model: keras.Model, k: int) -> None:
    """Freeze members 1..k-1 and make members k.. trainable, to fit the EANN for member k.

    The frozen members keep their weights and run BatchNorm in inference mode. Compile the
    model again afterwards.

    Args:
        model: an EANN, as `EANN()` builds it.
        k: the member that learns, 1-based.

    Raises:
        ValueError: `k` is not a member number.
    """
    members = eann_members(model)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(members):
        raise ValueError(f"k must be a member number in 1..{len(members)}, got {k!r}.")
    for i, member in enumerate(members, start=1):
        member.trainable = i >= k


@_base.shared_docstring
def EANN(
    num_members: int = 3,
    base: float = 2,
    first_depth: int = 8,
    width: int = 16,
    exit_every: int = 1,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    *,
    depths: Sequence[int] | None = None,
    include_preprocessing: bool = True,
) -> AnytimeModel:
    """An EANN of `AnytimeResNet` members whose costs grow by about `base`.

    Members: `depths` if given, else `member_depths(num_members, base, first_depth)`,
    e.g. ResNet-8, -14 and -26 for the defaults. Member k is `AnytimeResNet(depths[k-1],
    width, exit_every)`, nested as layer `member_k`; `eann_members(model)` returns them.

    Exits: every member's exits, member 1's first: `exit_1 … exit_K` with K the sum of
    the members' exit counts. Member k runs after member k-1's last exit, so the cost of
    one of its exits (`flops.exit_flops`) includes members 1..k-1 (up to their last
    exit) and grows strictly along the outputs; the last exit costs at most
    base / (base - 1) times member K alone.

    Training member by member: fit `eann_members(model)[k - 1]` with its own AdaLoss
    (its layers are the EANN's); `freeze_members_before(model, k)` freezes the earlier
    members for fitting the whole EANN.

    Args:
        num_members: the number of members when `depths` is None. Defaults to 3.
        base: the growth of the members' unit counts (and about their costs), > 1, when
            `depths` is None. Defaults to 2.
        first_depth: the first member's depth, 6n + 2, when `depths` is None. Defaults
            to 8.
        width: every member's `AnytimeResNet` width. Defaults to 16.
        exit_every: every member's `AnytimeResNet` exit_every. Defaults to 1.
        {shared arguments}
        depths: explicit member depths (any `AnytimeResNet` depths), shallow to deep.
            Defaults to None (`member_depths(num_members, base, first_depth)`).

    Returns:
        An `AnytimeModel` (without the top, every member's feature maps, in order).

    Raises:
        ValueError: no member depths, a depth that `AnytimeResNet` refuses, or a shared argument
            that keras.applications refuses.
    """
    if depths is None:
        depths = member_depths(num_members, base, first_depth)
        config = {"num_members": num_members, "base": base, "first_depth": first_depth}
    else:
        depths = list(depths)
        if not depths:
            raise ValueError("depths must name at least one member depth.")
        config = {"depths": depths}
    config.update(width=width, exit_every=exit_every, include_preprocessing=include_preprocessing)
    _base.positive_int(classes, "classes")
    shape = _base.checked_input_shape(
        input_tensor,
        input_shape,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    name = name or "eann"

    if weights is not None:
        preset = presets.lookup("EANN", config, weights, classes=classes if include_top else None)
        full = EANN(
            **config,
            input_tensor=input_tensor,
            input_shape=input_shape,
            classes=classes if preset is None else preset["classes"],
            classifier_activation=classifier_activation,
            name=name,
        )
        presets.load_weights(full, weights if preset is None else preset)
        if include_top:
            return full
        inner = EANN(
            **config,
            include_top=False,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
        )
        for trained, backbone in zip(eann_members(full), eann_members(inner)):
            for layer in backbone.layers:
                if layer.weights:
                    layer.set_weights(trained.get_layer(layer.name).get_weights())
        return inner

    inputs, x = _base.model_input(input_tensor, shape, 32, include_top=include_top)
    outputs, previous = [], None
    for k, depth in enumerate(depths, start=1):
        member = AnytimeResNet(
            depth,
            width=width,
            exit_every=exit_every,
            include_top=include_top,
            input_shape=tuple(x.shape[1:]),
            classes=classes,
            classifier_activation=classifier_activation,
            name=f"member_{k}",
            include_preprocessing=include_preprocessing,
        )
        start = x if previous is None else RunAfter(name=f"member_{k}_start")([x, previous])
        member_outputs = member(start)
        member_outputs = (
            list(member_outputs) if isinstance(member_outputs, (list, tuple)) else [member_outputs]
        )
        outputs += member_outputs
        previous = member_outputs[-1]
    if include_top:
        outputs = [layers.Identity(name=f"exit_{i}")(o) for i, o in enumerate(outputs, start=1)]
    else:
        outputs = _base.feature_outputs(outputs, pooling)
    return AnytimeModel(inputs, outputs, name=name, builder_config=("EANN", config))
