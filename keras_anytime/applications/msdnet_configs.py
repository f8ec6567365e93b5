"""`MSDNET_CONFIGS`: the MSDNet configurations of the paper, as the reference README trains
them, by name; `MSDNet(**MSDNET_CONFIGS[name])` builds one (`MSDNetCIFAR`,
`MSDNetImageNet`), and `keras-anytime train --family msdnet --msdnet-config NAME` trains it.
"""

from __future__ import annotations

__all__ = ["MSDNET_CONFIGS"]

MSDNET_CONFIGS: dict[str, dict] = {
    # CIFAR anytime prediction (paper Sec. 5 and Appendix A; README "block=7"): exits
    # after layers 4, 6, ..., 16; `flops.msdnet_reference_counts` is checked against the
    # reference's op_counter (tests/test_msdnet.py).
    "cifar_anytime": {
        "n_blocks": 7,
        "step": 2,
        "base": 4,
        "step_mode": "even",
        "n_channels": 16,
        "growth_rate": 6,
        "gr_factor": "1-2-4",
        "bn_factor": "1-2-4",
        "reduction": 0.5,
        "prune": "max",
        "bottleneck": True,
        "variant": "cifar",
    },
    # ImageNet, 4 scales, an exit every 4 layers (README "block=5, step=4").
    # `flops.msdnet_reference_counts` equals the figures the reference's measure_model
    # prints for it (benchmarks/README.md, "MSDNet ImageNet models, counted as the
    # reference counts"); the trainable parameters are 32 fewer: the stem conv has no bias.
    "imagenet_step4": {
        "n_blocks": 5,
        "step": 4,
        "base": 4,
        "step_mode": "even",
        "n_channels": 32,
        "growth_rate": 16,
        "gr_factor": "1-2-4-4",
        "bn_factor": "1-2-4-4",
        "reduction": 0.5,
        "prune": "max",
        "bottleneck": True,
        "variant": "imagenet",
    },
}
