"""MSDNet: the multi-scale dense network of Huang et al., with an exit after every block.

References:
- Huang et al., "Multi-Scale Dense Networks for Resource Efficient Image
  Classification", ICLR 2018 (arXiv 1703.09844).
- The authors' PyTorch implementation, github.com/kalviny/MSDNet-PyTorch
  (`models/msdnet.py`, `args.py`, README): the argument names below are its own
  (nBlocks -> n_blocks, stepmode -> step_mode, nChannels -> n_channels,
  growthRate -> growth_rate, grFactor -> gr_factor, bnFactor -> bn_factor).

The network keeps S feature maps side by side, scale 1 at the input resolution and each
next scale at half of it, with `n_channels * gr_factor[s]` channels at first. Every layer
adds `growth_rate * gr_factor[s]` channels at each scale it keeps (dense connectivity:
the new channels are concatenated). Every exit reads the coarsest scale. As depth grows
the finest scales are dropped (`prune`), with a 1x1 transition that compresses the
channels by `reduction`. The paper's configurations: `MSDNET_CONFIGS` (`msdnet_configs`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from keras import layers

from keras_anytime.applications import base as _base
from keras_anytime.applications.msdnet_configs import MSDNET_CONFIGS
from keras_anytime.layers import RunAfter
from keras_anytime.models import AnytimeModel

__all__ = [
    "MSDNET_CONFIGS",
    "MSDNet",
    "MSDNetCIFAR",
    "MSDNetImageNet",
    "block_steps",
    "conv_bn",
    "msd_layer",
    "scale_schedule",
]


def _factors(value, what: str) -> list[int]:
    """'1-2-4' or (1, 2, 4) -> [1, 2, 4]."""
    try:
        parts = value.split("-") if isinstance(value, str) else list(value)
        factors = [int(p) for p in parts]
        ok = all(f >= 1 and str(f) == str(p).strip() for f, p in zip(factors, parts))
    except (TypeError, ValueError):
        ok = False
    if not ok or not factors:
        raise ValueError(
            f"{what} must be positive integers, one per scale, as '1-2-4' or (1, 2, 4); "
            f"got {value!r}."
        )
    return factors


def block_steps(n_blocks: int, step: int, base: int, step_mode: str) -> list[int]:
    """The number of layers in each block, as the reference spaces the exits.

    Args:
        n_blocks: the number of blocks.
        step: the layers of every further block ("even"), or their growth ("lin_grow").
        base: the layers of the first block.
        step_mode: "even" or "lin_grow" (block i + 1 has `step * i + 1` layers).
    """
    return [base] + [step if step_mode == "even" else step * i + 1 for i in range(1, n_blocks)]


def scale_schedule(n_layers: int, n_scales: int, prune: str) -> list[tuple[int, int]]:
    """(input scales, output scales) of layers 1..n_layers, as the reference prunes them.

    Args:
        n_layers: L, the network's number of layers.
        n_scales: S, the number of scales.
        prune: "max" drops the finest scale every ceil(L / S) layers; "min" keeps every
            scale until the last S - 1 layers, which drop one each.
    """
    schedule = []
    interval = math.ceil(n_layers / n_scales)
    for n in range(1, n_layers + 1):
        if prune == "max":
            schedule.append((n_scales - max(0, n - 2) // interval, n_scales - (n - 1) // interval))
        else:
            schedule.append((min(n_scales, n_layers - n + 2), min(n_scales, n_layers - n + 1)))
    return schedule


def conv_bn(x, filters: int, strides: int, bottleneck: bool, bn_width: int, name: str):
    """The reference's ConvBN: [1x1 conv-BN-ReLU], then 3x3 conv-BN-ReLU to `filters`.

    Args:
        x: the input map, of c channels.
        filters: the output channels.
        strides: the 3x3 convolution's stride, 1 or 2.
        bottleneck: whether a 1x1 bottleneck of min(c, bn_width * filters) channels leads.
        bn_width: the bottleneck's width factor (the scale's `bn_factor`).
        name: the prefix of the layer names.
    """
    if bottleneck:
        inner = min(x.shape[-1], bn_width * filters)
        x = _base.conv_bn_relu(x, inner, 1, name=f"{name}_bottleneck")
    return _base.conv_bn_relu(x, filters, 3, strides, name=name)


def msd_layer(
    features: list, out_scales: int, growth: list[int], bn: list[int], bottleneck: bool, name: str
) -> list:
    """One MSDNet layer: the maps of the last len(features) scales in, of `out_scales` out.

    Scale s gains `growth[s]` channels: from a 3x3 conv of itself, or half from it and
    half from a strided 3x3 conv of scale s - 1 when that scale is an input.

    Args:
        features: the maps of scales S - len(features) .. S - 1 (0-based), finest first.
        out_scales: how many of the coarsest scales the layer outputs.
        growth: the channels each scale gains, one per scale (S).
        bn: the bottleneck width factor of each scale.
        bottleneck: whether every 3x3 conv has a 1x1 bottleneck before it.
        name: the prefix of the layer names.
    """
    n_scales = len(growth)
    by_scale = dict(zip(range(n_scales - len(features), n_scales), features))
    out = []
    for s in range(n_scales - out_scales, n_scales):
        x, tag = by_scale[s], f"{name}_s{s + 1}"
        if s - 1 in by_scale:
            half = growth[s] // 2
            down = conv_bn(by_scale[s - 1], half, 2, bottleneck, bn[s - 1], f"{tag}_down")
            parts = [x, down, conv_bn(x, half, 1, bottleneck, bn[s], f"{tag}_normal")]
        else:
            parts = [x, conv_bn(x, growth[s], 1, bottleneck, bn[s], f"{tag}_normal")]
        out.append(layers.Concatenate(name=f"{tag}_concat")(parts))
    return out


def _checked_arguments(
    n_blocks, step, base, step_mode, n_channels, growth_rate, gr_factor, bn_factor,
    reduction, prune, classes,
) -> tuple[list[int], list[int]]:  # fmt: skip
    """`MSDNet`'s arguments checked, with a ValueError naming the problem and the fix;
    returns the per-scale growth and bottleneck factors."""
    gr = _factors(gr_factor, "gr_factor")
    bn = _factors(bn_factor, "bn_factor")
    n_scales = len(gr)
    if len(bn) != n_scales:
        raise ValueError(
            f"bn_factor has {len(bn)} scales but gr_factor has {n_scales}: give one "
            "factor per scale in both."
        )
    for value, what in (
        (n_blocks, "n_blocks"),
        (n_channels, "n_channels"),
        (growth_rate, "growth_rate"),
        (classes, "classes"),
    ):
        _base.positive_int(value, what)
    if step_mode not in ("even", "lin_grow"):
        raise ValueError(f"step_mode must be 'even' or 'lin_grow', got {step_mode!r}.")
    if prune not in ("max", "min"):
        raise ValueError(f"prune must be 'max' or 'min', got {prune!r}.")
    if isinstance(base, bool) or not isinstance(base, int) or base < 1:
        raise ValueError(
            f"base={base!r} leaves the first block without layers, so exit 1 would read "
            "the stem: use an integer base >= 1."
        )
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}.")
    if step == 0 and step_mode == "even" and n_blocks > 1:
        raise ValueError(
            f"step=0 with step_mode='even' leaves blocks 2..{n_blocks} without layers, so "
            "their exits would repeat exit 1: use step >= 1, step_mode='lin_grow' or "
            "n_blocks=1."
        )
    if not 0.0 <= reduction <= 1.0:
        raise ValueError(f"reduction must be in [0, 1], got {reduction!r}.")
    odd = [s + 1 for s in range(1, n_scales) if growth_rate * gr[s] % 2]
    if odd:
        raise ValueError(
            f"growth_rate * gr_factor must be even at scales 2..{n_scales} (the new "
            f"channels split between a strided and a plain conv); scales {odd} are odd."
        )
    return gr, bn


def _stem(x, n_channels: int, gr: list[int], imagenet: bool) -> list:
    """The maps of every scale before the first block: the stem at scale 1, then a 3x3/2
    conv-BN-ReLU of the previous scale for each further scale."""
    n_scales = len(gr)
    if imagenet:
        x = _base.conv_bn_relu(x, n_channels * gr[0], 7, 2, name="stem_s1")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _base.conv_bn_relu(x, n_channels * gr[0], 3, name="stem_s1")
    maps = [x]
    for s in range(1, n_scales):
        maps.append(_base.conv_bn_relu(maps[-1], n_channels * gr[s], 3, 2, name=f"stem_s{s + 1}"))

    return maps


def _blocks(
    maps: list, steps: list[int], schedule, cuts: set[int], gr: list[int], bn: list[int],
    n_channels: int, growth_rate: int, reduction: float, prune: str, bottleneck: bool,
) -> list:  # fmt: skip
    """Run the blocks of MSDNet layers (with transitions where a scale is dropped, or at
    `cuts` for prune "min") over the stem's `maps`; returns each block's coarsest map, as
    its exit reads it once the whole block has run."""
    n_scales = len(gr)
    growth = [growth_rate * g for g in gr]
    features, n_in, n = [], n_channels, 0
    for steps_in_block in steps:
        for _ in range(steps_in_block):
            n += 1
            in_scales, out_scales = schedule[n - 1]
            maps = msd_layer(maps, out_scales, growth, bn, bottleneck, name=f"layer{n}")
            n_in += growth_rate
            due = in_scales > out_scales if prune == "max" else n in cuts
            if reduction > 0 and due:
                n_in = math.floor(reduction * n_in)
                if n_in < 1:
                    raise ValueError(f"reduction={reduction} leaves no channels at layer {n}.")
                first = n_scales - len(maps)
                maps = [
                    _base.conv_bn_relu(m, n_in * gr[s], 1, name=f"layer{n}_s{s + 1}_transition")
                    for s, m in zip(range(first, n_scales), maps)
                ]
        # The exit reads the coarsest scale, after the whole block has run.
        end = (
            maps[-1]
            if len(maps) == 1
            else RunAfter(name=f"block{len(features) + 1}_end")([maps[-1], *maps[:-1]])
        )
        features.append(end)
    return features


@_base.shared_docstring
def MSDNet(
    n_blocks: int = 7,
    step: int = 2,
    base: int = 4,
    step_mode: str = "even",
    n_channels: int = 16,
    growth_rate: int = 6,
    gr_factor: str | Sequence[int] = "1-2-4",
    bn_factor: str | Sequence[int] = "1-2-4",
    reduction: float = 0.5,
    prune: str = "max",
    bottleneck: bool = True,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    *,
    variant: str | None = None,
    include_preprocessing: bool = True,
) -> AnytimeModel:
    """MSDNet with one exit per block (`n_blocks` exits).

    The defaults are the paper's CIFAR anytime model, `MSDNET_CONFIGS["cifar_anytime"]`.

    Forms (`variant`; by default "imagenet" for inputs over 64 pixels, else "cifar"):
      CIFAR: 3x3 conv-BN-ReLU stem at scale 1. Exit heads: two 3x3/2 conv-BN-ReLU of
        128 channels, global average pooling, Dense. Default input (32, 32, 3).
      ImageNet: 7x7/2 conv-BN-ReLU and 3x3/2 max pool stem. Exit heads: two 3x3/2
        conv-BN-ReLU keeping the channels, global average pooling, Dense.
        Default input (224, 224, 3).
    Scales 2..S start from a 3x3/2 conv-BN-ReLU of the previous scale, so the scale s
    map is 1/2^(s-1) of scale 1's side. Exits read the coarsest scale; at the reference
    sizes (2x2 after the head's convs) the global pooling equals its AvgPool2d(2). The
    ImageNet stem conv has no bias (the reference's has one, before BatchNorm).

    Costs: a block runs all its scales before its exit (`RunAfter`), so exit k's
    `exit_flops` covers blocks 1..k and exit k's head, as the reference runs them, and with
    `include_earlier_exits=True` the earlier heads too; `flops.msdnet_reference_counts(model)`
    reproduces the figures the reference prints.

    Args:
        n_blocks: number of blocks, and of exits. Defaults to 7.
        step: layers of blocks 2.. ("even") or their growth ("lin_grow"). Defaults to 2.
        base: layers of block 1, >= 1. Defaults to 4.
        step_mode: "even" (`step` layers in every later block) or "lin_grow" (`step * i
            + 1` in block i + 1). Defaults to "even".
        n_channels: stem channels at scale 1 (times gr_factor[s] at scale s). Defaults to 16.
        growth_rate: channels each layer adds at scale 1 (times gr_factor[s]). Defaults to 6.
        gr_factor: per scale, "1-2-4" or (1, 2, 4); S is its length. Defaults to "1-2-4".
        bn_factor: per scale, as gr_factor; caps the bottleneck width at bn_factor[s] *
            (new channels). Defaults to "1-2-4".
        reduction: channel fraction each transition keeps (0: none). Defaults to 0.5.
        prune: "max" (drop a scale every ceil(L / S) layers) or "min" (keep every scale
            until the last layers; transitions at L/3 and 2L/3). Defaults to "max".
        bottleneck: a 1x1 bottleneck before every 3x3 conv of a layer. Defaults to True.
        {shared arguments}
        variant: "cifar" or "imagenet" to force the form. Defaults to None (see Forms).

    Returns:
        An `AnytimeModel` with outputs `exit_1 … exit_{n_blocks}` (without the top, the
        coarsest-scale maps the heads read).

    Raises:
        ValueError: an argument out of range (the message names the fix), or too small an input.
    """
    gr, bn = _checked_arguments(
        n_blocks, step, base, step_mode, n_channels, growth_rate, gr_factor, bn_factor,
        reduction, prune, classes,
    )  # fmt: skip
    n_scales = len(gr)
    shape = _base.checked_input_shape(
        input_tensor,
        input_shape,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    if variant is None:
        large = shape is not None and all(d is not None and d > 64 for d in shape[:2])
        variant = "imagenet" if large else "cifar"
    if variant not in ("cifar", "imagenet"):
        raise ValueError(f"variant must be 'cifar' or 'imagenet', got {variant!r}.")
    imagenet = variant == "imagenet"
    steps = block_steps(n_blocks, step, base, step_mode)
    n_layers = sum(steps)
    schedule = scale_schedule(n_layers, n_scales, prune)
    cuts = {math.floor(n_layers / 3), math.floor(2 * n_layers / 3)}

    inputs, x = _base.model_input(
        input_tensor, shape, 224 if imagenet else 32, include_top=include_top
    )
    # Every scale halves the previous one; the ImageNet stem first divides by 4.
    _base.check_min_size(
        x, (4 if imagenet else 1) * 2 ** (n_scales - 1), f"MSDNet with {n_scales} scales"
    )
    if include_preprocessing:
        x = _base.preprocessing(x, imagenet)
    maps = _stem(x, n_channels, gr, imagenet)
    features = _blocks(
        maps, steps, schedule, cuts, gr, bn, n_channels, growth_rate, reduction, prune,
        bottleneck,
    )  # fmt: skip

    def pre(x, name):
        width = x.shape[-1] if imagenet else 128
        x = _base.conv_bn_relu(x, width, 3, 2, name=f"{name}1")
        return _base.conv_bn_relu(x, width, 3, 2, name=f"{name}2")

    def head(x, index, n_classes):
        return _base.exit_head(x, index, n_classes, classifier_activation, pre=pre)

    config = {
        "n_blocks": n_blocks,
        "step": step,
        "base": base,
        "step_mode": step_mode,
        "n_channels": n_channels,
        "growth_rate": growth_rate,
        "gr_factor": "-".join(map(str, gr)),
        "bn_factor": "-".join(map(str, bn)),
        "reduction": reduction,
        "prune": prune,
        "bottleneck": bottleneck,
        "variant": variant,
        "include_preprocessing": include_preprocessing,
    }
    return _base.finish(
        inputs,
        features,
        head,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        builder="MSDNet",
        config=config,
        name=name or "msdnet",
    )


def MSDNetCIFAR(**kwargs) -> AnytimeModel:
    """`MSDNet(**MSDNET_CONFIGS["cifar_anytime"], **kwargs)`: the paper's CIFAR model.

    The CIFAR anytime model: 7 blocks and exits, 3 scales; `weights="cifar10"` loads the
    zoo's `msdnet_cifar10`.
    """
    return MSDNet(**{**MSDNET_CONFIGS["cifar_anytime"], **kwargs})


def MSDNetImageNet(**kwargs) -> AnytimeModel:
    """`MSDNet(**MSDNET_CONFIGS["imagenet_step4"], **kwargs)`: the paper's ImageNet model.

    The step-4 model: 5 blocks and exits, 4 scales, input (224, 224, 3).
    """
    return MSDNet(**{**MSDNET_CONFIGS["imagenet_step4"], **kwargs})
