"""Parameters and MACs per exit of the standard configurations of each family.

Builds the models (no training) and prints markdown tables: the CIFAR configurations
(32x32 inputs, 10 classes) next to published figures where they exist, their MACs at
every exit, and the MSDNet ImageNet models counted as the MSDNet reference counts.

    python3 benchmarks/model_table.py

MACs are `keras_anytime.flops.exit_flops`: multiply-accumulates of convolutions and
Dense layers on the path to each exit (its own head, not the other exits' heads).
"""

from __future__ import annotations

import keras

from keras_anytime.applications import (
    EANN,
    MSDNET_CONFIGS,
    AnytimeDenseNet,
    AnytimeResNet,
    MSDNet,
    eann_members,
)
from keras_anytime.flops import exit_flops, msdnet_reference_counts

HE = "He et al., CVPR 2016, Table 6"
CIFAR = [
    ("AnytimeResNet-20", lambda: AnytimeResNet(20), "0.27M", HE),
    ("AnytimeResNet-32", lambda: AnytimeResNet(32), "0.46M", HE),
    ("AnytimeResNet-56", lambda: AnytimeResNet(56), "0.85M", HE),
    (
        "AnytimeDenseNet-BC-100 (k=12)",
        lambda: AnytimeDenseNet(100),
        "0.8M",
        "Huang et al., CVPR 2017, Table 2",
    ),
    ("MSDNet, CIFAR anytime", lambda: MSDNet(**MSDNET_CONFIGS["cifar_anytime"]), "—", ""),
    ("EANN of ResNet-8/14/26 (base 2)", lambda: EANN(num_members=3, base=2), "—", ""),
]
# Printed by the reference (kalviny/MSDNet-PyTorch op_counter) for its released step-7
# ImageNet model, quoted in that repository's issue #10 (2019-11-11).
STEP7_PRINTED = [615.69, 1436.39, 2283.21, 2967.42, 3253.79], [8.76, 20.15, 31.73, 41.86, 62.31]
# Printed by the reference itself when run: REFERENCE_RUN (CIFAR-10 and ImageNet
# arguments of its README; tests/test_msdnet.py has the exact returned values).
REFERENCE_RUN = (
    "kalviny/MSDNet-PyTorch@f654595270cef1f7555a82af41c38d6f581e7e16 "
    "op_counter.measure_model, run on 2026-11-27 (CPU, torch 2.13.0+cpu)"
)
STEP4_PRINTED = [339.90, 685.46, 1008.16, 1254.47, 1360.53], [4.24, 8.77, 13.07, 16.75, 23.96]
CIFAR_PRINTED = (
    [15.13, 25.48, 37.06, 46.28, 57.28, 66.89, 75.86],
    [0.42, 0.85, 1.24, 1.65, 2.12, 2.53, 2.99],
)


def trainable(model) -> int:
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def millions(values, digits: int = 2) -> str:
    return ", ".join(f"{v / 1e6:.{digits}f}" for v in values)


def cifar_tables() -> list[str]:
    summary = [
        "| Model | Exits | Params, all exits | Params, path to last exit | Published params "
        "(single-exit network) | MACs, first exit | MACs, last exit |",
        "|---|---|---|---|---|---|---|",
    ]
    per_exit = ["| Model | MACs at exits 1..K (M, cumulative) |", "|---|---|"]
    for name, build, published, source in CIFAR:
        model = build()
        macs = exit_flops(model)
        # (an EANN's members are nested models, counted whole: no single path to show)
        path = trainable(keras.Model(model.inputs, model.outputs[-1])) / 1e6
        last_path = "—" if name.startswith("EANN") else f"{path:.3f}M"
        cited = f"{published} ({source})" if source else published
        summary.append(
            f"| {name} | {len(macs)} | {trainable(model) / 1e6:.3f}M | {last_path} "
            f"| {cited} | {macs[0] / 1e6:.2f}M | {macs[-1] / 1e6:.2f}M |"
        )
        per_exit.append(f"| {name} | {millions(macs)} |")
        if name.startswith("EANN"):
            own = [exit_flops(member)[-1] for member in eann_members(model)]
            eann_note = (
                f"EANN members alone: {millions(own)} M MACs (ratios "
                f"{', '.join(f'{b / a:.2f}' for a, b in zip(own, own[1:]))}); the whole "
                f"sequence costs {macs[-1] / own[-1]:.2f}x its largest member, within the "
                "paper's bound base / (base - 1) = 2."
            )
        if name.startswith("MSDNet"):
            counted = msdnet_reference_counts(model)
            msdnet_note = (
                "MSDNet CIFAR anytime, counted as the reference counts (earlier exits' heads, "
                "ReLU and pooling ops, Dense bias included): FLOPs "
                f"{millions([c[0] for c in counted])} M, params "
                f"{millions([c[1] for c in counted])} M. Printed by the reference "
                f"({REFERENCE_RUN}, `--data cifar10 --nBlocks 7 --stepmode even --step 2 "
                "--base 4 --nChannels 16`): FLOPs "
                f"{', '.join(f'{v:.2f}' for v in CIFAR_PRINTED[0])} M, params "
                f"{', '.join(f'{v:.2f}' for v in CIFAR_PRINTED[1])} M."
            )
    return [*summary, "", eann_note, "", msdnet_note, "", *per_exit]


def imagenet_table() -> list[str]:
    rows = [
        "| MSDNet ImageNet (224x224, 1000 classes) | Exit | FLOPs, reference rule | "
        "FLOPs, printed by the reference | Params, reference rule | Params, printed | "
        "MACs, exit_flops |",
        "|---|---|---|---|---|---|---|",
    ]
    step7 = {**MSDNET_CONFIGS["imagenet_step4"], "step": 7, "base": 7}
    for name, config, printed in [
        ("step 4 (README)", MSDNET_CONFIGS["imagenet_step4"], STEP4_PRINTED),
        ("step 7 (README weights)", step7, STEP7_PRINTED),
    ]:
        model = MSDNet(**config, classes=1000)
        macs = exit_flops(model)
        for k, (ops, params) in enumerate(msdnet_reference_counts(model)):
            flops_ref = f"{printed[0][k]:.2f}M"
            params_ref = f"{printed[1][k]:.2f}M"
            rows.append(
                f"| {name} | {k + 1} | {ops / 1e6:.2f}M | {flops_ref} | {params / 1e6:.2f}M "
                f"| {params_ref} | {macs[k] / 1e6:.2f}M |"
            )
    return rows


def main():
    lines = [
        "# Parameters and MACs per exit",
        "",
        "Generated by `python3 benchmarks/model_table.py` "
        f"(Keras {keras.__version__}, {keras.config.backend()} backend). Params: trainable "
        "(BatchNorm moving statistics excluded). MACs: `keras_anytime.flops.exit_flops`.",
        "",
        "## CIFAR configurations (32x32x3 inputs, 10 classes)",
        "",
        *cifar_tables(),
    ]
    lines += [
        "",
        "## MSDNet ImageNet models, counted as the reference counts",
        "",
        "The reference rule: `keras_anytime.flops.msdnet_reference_counts`, the "
        "counting of kalviny/MSDNet-PyTorch `op_counter.py` (cumulative, earlier exits "
        "included, ReLU/pooling ops and Dense bias counted). Printed figures: step 4, "
        f"{REFERENCE_RUN}, with the README's ImageNet arguments; step 7, that "
        "repository's issue #10 (the same run at step 7 prints the same).",
        "",
        *imagenet_table(),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
