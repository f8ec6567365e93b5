"""Training images/s of the 9-exit AnytimeResNet-20 and the CIFAR MSDNet, per backend and
precision, against a plain PyTorch implementation of the same ResNet-20, in one run.

Every configuration is a worker process of its own (a Keras backend is process-wide). The
workers are started and warmed up one at a time, then timed in turns: round r times
`--steps` training steps of each worker in order, while the others wait idle, so a drift
in machine load hits every configuration alike. The figure per configuration is its
median over the rounds. Inputs are synthetic CIFAR-sized batches (raw RGB 0..255, integer
labels) already in memory; every exit gets the cross-entropy loss with weight 1 (CONST),
SGD with momentum 0.9.

The PyTorch network is the package's ResNet-20 written directly in PyTorch: a 3x3 stem,
pre-activation basic units (BN-ReLU-conv3x3-BN-ReLU-conv3x3, a 1x1 projection when the
shape changes), widths 16/32/64, 3 units a stage, an exit after every unit (BN-ReLU-global
average pool-Linear), channels_last, the sum of the exits' cross-entropies.

    pip install -e ".[bench]"   # PyTorch, the CPU wheel
    python3 benchmarks/train_throughput.py [--quick] [--rounds 3] [--steps 15]

The last line is `ratio_vs_torch_eager_bf16: X.XX`: the package's fastest ResNet-20
configuration over plain PyTorch with bf16 autocast.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# name: (network, runner, options)
CONFIGS = {
    "torch_eager_bf16": ("resnet20", "torch", {"compile": False}),
    "torch_compile_bf16": ("resnet20", "torch", {"compile": True}),
    "torch_eager_float32": ("resnet20", "torch", {"compile": False, "float32": True}),
    "torch_compile_float32": ("resnet20", "torch", {"compile": True, "float32": True}),
    "tf_bf16": ("resnet20", "tensorflow", {"policy": "mixed_bfloat16"}),
    "tf_bf16_keras_bn": ("resnet20", "tensorflow", {"policy": "mixed_bfloat16", "keras_bn": True}),
    "tf_float32": ("resnet20", "tensorflow", {"policy": "float32"}),
    "tf_bf16_xla": ("resnet20", "tensorflow", {"policy": "mixed_bfloat16", "jit": True}),
    "tf_float32_xla": ("resnet20", "tensorflow", {"policy": "float32", "jit": True}),
    "tf_bf16_batch256": ("resnet20", "tensorflow", {"policy": "mixed_bfloat16", "batch": 256}),
    "jax_bf16": ("resnet20", "jax", {"policy": "mixed_bfloat16"}),
    "keras_torch_bf16": ("resnet20", "torch_backend", {"policy": "mixed_bfloat16"}),
    "keras_torch_float32": ("resnet20", "torch_backend", {"policy": "float32"}),
    "jax_float32": ("resnet20", "jax", {"policy": "float32"}),
    "msdnet_tf_bf16": ("msdnet", "tensorflow", {"policy": "mixed_bfloat16"}),
    "msdnet_tf_bf16_keras_bn": (
        "msdnet",
        "tensorflow",
        {"policy": "mixed_bfloat16", "keras_bn": True},
    ),
}
QUICK = ("torch_eager_bf16", "tf_bf16", "tf_bf16_keras_bn", "torch_compile_bf16")
KERAS_RUNNERS = {"tensorflow": "tensorflow", "jax": "jax", "torch_backend": "torch"}


def torch_resnet20():
    """The 9-exit pre-activation ResNet-20 in plain PyTorch (see the module docstring)."""
    import torch
    from torch import nn

    class Unit(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.shortcut = (
                nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
            )

        def forward(self, x):
            pre = torch.relu(self.bn1(x))
            y = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
            return y + (x if self.shortcut is None else self.shortcut(pre))

    class Exit(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.bn, self.fc = nn.BatchNorm2d(c), nn.Linear(c, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(x)).mean((2, 3)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            units, exits, cin = [], [], 16
            for stage, width in enumerate((16, 32, 64)):
                for i in range(3):
                    units.append(Unit(cin, width, 2 if stage and i == 0 else 1))
                    exits.append(Exit(width))
                    cin = width
            self.units, self.exits = nn.ModuleList(units), nn.ModuleList(exits)

        def forward(self, x):
            x, outs = self.stem(x), []
            for unit, head in zip(self.units, self.exits):
                x = unit(x)
                outs.append(head(x))
            return outs

    return Net()


def torch_step(options: dict, batch: int):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    model = torch_resnet20().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = (torch.rand(batch, 3, 32, 32) * 255 - 120) / 64
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not options.get("float32")):
            loss = sum(torch.nn.functional.cross_entropy(o, y) for o in model(x))
        loss.backward()
        opt.step()

    return torch.compile(step) if options["compile"] else step


def keras_step(network: str, options: dict, batch: int):
    import keras
    import numpy as np

    keras.mixed_precision.set_global_policy(options["policy"])
    from keras_anytime.applications import MSDNET_CONFIGS, AnytimeResNet, MSDNet, base

    if options.get("keras_bn"):
        base.BatchNormalization = keras.layers.BatchNormalization
    keras.utils.set_random_seed(0)
    model = (
        AnytimeResNet(20) if network == "resnet20" else MSDNet(**MSDNET_CONFIGS["cifar_anytime"])
    )
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        jit_compile=bool(options.get("jit")),
    )
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.uniform(0, 255, (batch, 32, 32, 3)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, 10, batch))
    return lambda: model.train_on_batch(x, y)


def worker(name: str) -> None:
    """Build `name`, warm up, then answer each "N" on stdin with the images/s of N steps."""
    network, runner, options = CONFIGS[name]
    batch = options.get("batch", 128)
    step = torch_step(options, batch) if runner == "torch" else keras_step(network, options, batch)
    for _ in range(5 if runner != "torch" or not options["compile"] else 8):
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        start = time.perf_counter()
        for _ in range(n):
            step()
        print(json.dumps({"images_per_s": n * batch / (time.perf_counter() - start)}), flush=True)


def start(name: str) -> subprocess.Popen:
    runner = CONFIGS[name][1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if runner in KERAS_RUNNERS:
        env["KERAS_BACKEND"] = KERAS_RUNNERS[runner]
    if runner == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"worker {name} failed to start (it printed {line!r}).")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick: 2)")
    parser.add_argument("--steps", type=int, default=None, help="per turn; default 15 (quick 10)")
    parser.add_argument("--configs", nargs="*", default=None, choices=sorted(CONFIGS))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    names = args.configs or (list(QUICK) if args.quick else list(CONFIGS))
    rounds = args.rounds or (2 if args.quick else 3)
    steps = args.steps or (10 if args.quick else 15)
    workers, failed = {}, {}
    for name in names:
        try:
            workers[name] = start(name)
        except RuntimeError as e:
            failed[name] = str(e)
            print(f"# {e}", flush=True)
    figures = {name: [] for name in workers}
    for _ in range(rounds):
        for name, proc in workers.items():
            proc.stdin.write(f"{steps}\n")
            proc.stdin.flush()
            figures[name].append(json.loads(proc.stdout.readline())["images_per_s"])
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()
    medians = {name: statistics.median(v) for name, v in figures.items()}
    reference = medians.get("torch_eager_bf16")
    print(f"| configuration | images/s (median of {rounds}) | vs torch eager bf16 |")
    print("|---|---|---|")
    for name, value in medians.items():
        ratio = f"{value / reference:.2f}" if reference else "-"
        print(f"| {name} | {value:.0f} | {ratio} |")
    ours = {
        n: v for n, v in medians.items() if CONFIGS[n][0] == "resnet20" and CONFIGS[n][1] != "torch"
    }
    if "msdnet_tf_bf16" in medians and "msdnet_tf_bf16_keras_bn" in medians:
        gain = medians["msdnet_tf_bf16"] / medians["msdnet_tf_bf16_keras_bn"]
        print(f"msdnet_fused_bn_over_keras_bn: {gain:.2f}")
    if reference and ours:
        best = max(ours, key=ours.get)
        print(f"fastest: {best}")
        print(f"ratio_vs_torch_eager_bf16: {ours[best] / reference:.2f}")


if __name__ == "__main__":
    main()
