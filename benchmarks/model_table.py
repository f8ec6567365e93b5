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
from keras_anytime.applications.msdnet import reference_counts
from keras_anytime.flops import exit_flops

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
            counted = reference_counts(model)
            msdnet_note = (
                "MSDNet CIFAR anytime, counted as the reference counts (earlier exits' heads, "
                "ReLU and pooling ops, Dense bias included; no published per-exit figure "
                f"found): FLOPs {millions([c[0] for c in counted])} M, params "
                f"{millions([c[1] for c in counted])} M."
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
        ("step 4 (README)", MSDNET_CONFIGS["imagenet_step4"], None),
        ("step 7 (README weights)", step7, STEP7_PRINTED),
    ]:
        model = MSDNet(**config, classes=1000)
        macs = exit_flops(model)
        for k, (ops, params) in enumerate(reference_counts(model)):
            flops_ref = f"{printed[0][k]:.2f}M" if printed else "—"
            params_ref = f"{printed[1][k]:.2f}M" if printed else "—"
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
        "The reference rule: `keras_anytime.applications.msdnet.reference_counts`, the "
        "counting of kalviny/MSDNet-PyTorch `op_counter.py` (cumulative, earlier exits "
        "included, ReLU/pooling ops and Dense bias counted). Printed figures: that "
        "repository's issue #10. No printed or published per-exit figure was found for "
        "the step-4 model.",
        "",
        *imagenet_table(),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
