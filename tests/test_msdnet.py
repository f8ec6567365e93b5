import math

import pytest
from helpers import adaloss_fit_lowers_loss, assert_round_trip

from keras_anytime.applications import MSDNET_CONFIGS, MSDNet
from keras_anytime.applications.msdnet import block_steps, scale_schedule
from keras_anytime.flops import exit_flops
from keras_anytime.flops import msdnet_reference_counts as reference_counts

SMALL = {"n_blocks": 3, "step": 1, "base": 1, "n_channels": 4, "growth_rate": 2}


def in_millions(model) -> list[tuple[float, float]]:
    """`reference_counts` (FLOPs, params) in millions, as the reference prints them."""
    return [(ops / 1e6, params / 1e6) for ops, params in reference_counts(model)]


def trainable_params(model) -> int:
    return sum(math.prod(w.shape) for w in model.trainable_weights)


# Figures printed by the reference itself ("FLOPs: %.2fM, Params: %.2fM" per exit) and
# the exact values its measure_model returned, from building the reference MSDNet with
# its own args.py parser and counting it as its main.py does:
# kalviny/MSDNet-PyTorch@f654595270cef1f7555a82af41c38d6f581e7e16
# op_counter.measure_model, run on 2026-11-27 (CPU, torch 2.13.0+cpu).
# CIFAR-10 anytime, 32x32: --data cifar10 --arch msdnet --nBlocks 7 --stepmode even
# --step 2 --base 4 --nChannels 16 (defaults: growthRate 6, grFactor/bnFactor 1-2-4,
# prune max, reduction 0.5, bottleneck).
CIFAR_PRINTED = [
    (15.13, 0.42),
    (25.48, 0.85),
    (37.06, 1.24),
    (46.28, 1.65),
    (57.28, 2.12),
    (66.89, 2.53),
    (75.86, 2.99),
]
CIFAR_RETURNED = (
    [15_128_842, 25_482_772, 37_061_150, 46_284_584, 57_277_490, 66_891_068, 75_856_454],
    [422_266, 853_572, 1_240_122, 1_649_108, 2_120_302, 2_533_592, 2_986_690],
)
# ImageNet step 4, 224x224 (the README's command): --data ImageNet --nBlocks 5
# --stepmode even --step 4 --base 4 --nChannels 32 --growthRate 16 --grFactor 1-2-4-4
# --bnFactor 1-2-4-4.
STEP4_PRINTED = [
    (339.90, 4.24),
    (685.46, 8.77),
    (1008.16, 13.07),
    (1254.47, 16.75),
    (1360.53, 23.96),
]
STEP4_RETURNED = (
    [339_902_824, 685_456_720, 1_008_156_120, 1_254_472_688, 1_360_529_624],
    [4_238_504, 8_772_240, 13_073_272, 16_748_416, 23_958_440],
)


def test_schedules():
    assert block_steps(7, 2, 4, "even") == [4, 2, 2, 2, 2, 2, 2]
    assert block_steps(5, 1, 1, "lin_grow") == [1, 2, 3, 4, 5]
    # CIFAR anytime: L = 16 layers, 3 scales, one dropped every ceil(16 / 3) = 6 layers
    schedule = scale_schedule(16, 3, "max")
    assert [out for _, out in schedule] == [3] * 6 + [2] * 6 + [1] * 4
    assert [n for n, (i, o) in enumerate(schedule, start=1) if i > o] == [7, 13]
    assert scale_schedule(5, 3, "min") == [(3, 3), (3, 3), (3, 3), (3, 2), (2, 1)]


def test_cifar_anytime_config():
    model = MSDNet(**MSDNET_CONFIGS["cifar_anytime"])  # the defaults
    assert model.output_names == [f"exit_{k}" for k in range(1, 8)]
    assert all(tuple(o.shape) == (None, 10) for o in model.outputs)
    # exit k reads the coarsest scale at the end of layer 4 + 2(k-1), after its block
    ends = [model.get_layer(f"exit_{k}_head1_conv").input for k in range(1, 8)]
    assert [t._keras_history.operation.name for t in ends[:2]] == ["block1_end", "block2_end"]
    assert tuple(ends[0].shape) == (None, 8, 8, 160)  # 4 * (16 + 4 * 6) channels
    assert tuple(ends[-1].shape)[1:3] == (8, 8)
    macs = exit_flops(model)
    assert all(a < b for a, b in zip(macs, macs[1:]))
    # What the reference prints for this model (CIFAR_PRINTED above), within 1%.
    counts = in_millions(model)
    assert len(counts) == len(CIFAR_PRINTED)
    for (flops, params), (ref_flops, ref_params) in zip(counts, CIFAR_PRINTED):
        assert flops == pytest.approx(ref_flops, rel=0.01)
        assert params == pytest.approx(ref_params, rel=0.01)
    # ... and, exactly, what its measure_model returned; the reference model's
    # parameters (2,986,690 in all) are our trainable ones.
    assert [list(c) for c in zip(*reference_counts(model))] == list(CIFAR_RETURNED)
    assert trainable_params(model) == CIFAR_RETURNED[1][-1]
    # Exit 1 by hand from the architecture:
    # stem: 32x32x16 from 3 (3x3): 442,368; 16x16x32 from 16 (3x3/2): 1,179,648;
    #   8x8x64 from 32 (3x3/2): 1,179,648 -> 2,801,664.
    # layers 1..4 with c = 16, 22, 28, 34 base channels (scales hold c, 2c, 4c):
    #   1x1 bottlenecks (min(c_in, bn * new)): 1024*6*c (scale 1) + 1024*6*c (down to 2)
    #   + 256*12*2c (scale 2) + 256*24*2c (down to 3) + 64*48*4c (scale 3) = 43,008 c;
    #   sum(c) = 100 -> 4,300,800.
    #   3x3 convs: 1024*6*54 + 256*6*54 + 256*6*108 + 64*12*216 + 64*12*432 = 1,078,272
    #   per layer -> 4,313,088.
    # head: 4x4x128 from 160 (3x3/2): 2,949,120; 2x2x128 from 128: 589,824; Dense 1,280.
    assert macs[0] == 2_801_664 + 4_300_800 + 4_313_088 + 2_949_120 + 589_824 + 1_280
    # parameters of exit 1 by hand: stem 432 + 4,608 + 18,432 conv + 224 BN = 23,696;
    # each layer 276 c + 9,348 (convs and BN) -> 276 * 100 + 4 * 9,348 = 64,992;
    # head 184,320 + 147,456 conv + 512 BN + 1,290 Dense = 333,578.
    assert reference_counts(model)[0][1] == 23_696 + 64_992 + 333_578


# The numbers the reference prints for its released ImageNet step-7 model (README
# weights, nBlocks 5, base 7, step 7, nChannels 32, growthRate 16, grFactor/bnFactor
# 1-2-4-4), as quoted in kalviny/MSDNet-PyTorch issue #10 ("About reproducing anytime
# experiment in paper", 2019-11-11): "FLOPs: 615.69M, Params: 8.76M" ... per exit.
# Running the reference at f654595 (as above, --step 7 --base 7) prints the same.
STEP7_PRINTED = [
    (615.69, 8.76),
    (1436.39, 20.15),
    (2283.21, 31.73),
    (2967.42, 41.86),
    (3253.79, 62.31),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides,expected",
    [({"step": 7, "base": 7}, STEP7_PRINTED), ({}, STEP4_PRINTED)],
    ids=["step7-printed", "step4-printed"],
)
def test_imagenet_models_match_reference_figures(overrides, expected):
    config = {**MSDNET_CONFIGS["imagenet_step4"], **overrides}
    model = MSDNet(**config, classes=1000)
    assert tuple(model.inputs[0].shape) == (None, 224, 224, 3)
    assert len(model.outputs) == 5
    counts = in_millions(model)
    assert len(counts) == len(expected)
    for (flops, params), (ref_flops, ref_params) in zip(counts, expected):
        assert flops == pytest.approx(ref_flops, rel=0.01)
        assert params == pytest.approx(ref_params, rel=0.01)
    macs = exit_flops(model)
    assert all(a < b for a, b in zip(macs, macs[1:]))
    if not overrides:  # step 4: exactly what the reference's measure_model returned
        assert [list(c) for c in zip(*reference_counts(model))] == list(STEP4_RETURNED)
        # the reference's stem conv has a bias (32 params) that ours leaves out
        assert trainable_params(model) == STEP4_RETURNED[1][-1] - 32


def test_include_top_false_and_small_inputs():
    model = MSDNet(
        **SMALL,
        include_top=False,
        input_shape=(32, 32, 3),
        step_mode="lin_grow",
        gr_factor="1-2",
        bn_factor=[1, 2],
    )
    # 1 + 2 + 3 = 6 layers, 2 scales; the exits read scale 2 (16x16)
    assert model.output_names == ["features_1", "features_2", "features_3"]
    assert [tuple(o.shape)[1:3] for o in model.outputs] == [(16, 16)] * 3
    assert len(MSDNet(**SMALL, input_shape=(4, 4, 3)).outputs) == 3  # 4, 2, 1 pixels


@pytest.mark.slow
def test_round_trip_and_adaloss_training(tmp_path, tiny_data):
    x, y = tiny_data
    model = MSDNet(**SMALL, prune="min")
    first, last = adaloss_fit_lowers_loss(model, x, y)
    assert last < first
    assert_round_trip(model, tmp_path / "msdnet.keras", x[:4])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_shape": (2, 2, 3)}, "too small"),
        (
            {
                "variant": "imagenet",
                "input_shape": (16, 16, 3),
                "gr_factor": "1-2-4-4",
                "bn_factor": "1-2-4-4",
            },
            "too small",
        ),
        ({"step": 0}, "leaves blocks 2..7 without layers"),
        ({"base": 0}, "leaves the first block without layers"),
        ({"step": -1, "step_mode": "lin_grow"}, "step must be"),
        ({"step_mode": "linear"}, "step_mode"),
        ({"prune": "none"}, "prune"),
        ({"gr_factor": "1-2-x"}, "gr_factor"),
        ({"bn_factor": "1-2"}, "bn_factor has 2 scales"),
        ({"growth_rate": 5, "gr_factor": "1-1-2"}, "must be even"),
        ({"reduction": 1.5}, "reduction"),
        ({"n_blocks": 0}, "n_blocks"),
        ({"weights": "imagenet"}, "neither a preset"),
        ({"n_blocks": 3, "weights": "cifar10"}, "No 'cifar10' checkpoint.*msdnet_cifar10"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MSDNet(**kwargs)
