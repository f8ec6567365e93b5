"""A plain-PyTorch reference training of the single-exit ResNet-20, to separate what the
data cost from what this package's training does.

The network is `train_throughput.torch_resnet20` (the same pre-activation ResNet-20 as the
package's, in plain PyTorch) trained at its last exit only, which is the package's
`--weighting opt` network. Everything else is written here apart from the package: the
augmentation (pad 4 with zeros, random 32x32 crop, random horizontal flip), the
normalisation (CIFAR-10's per-channel mean and standard deviation), and the textbook recipe
of the package's run it is compared with (benchmarks/README.md, "At 60 epochs"): Nesterov
SGD, momentum 0.9, peak lr 0.1 at batch 128, one warm-up epoch then cosine to 0, coupled
weight decay 5e-4 on the convolution and Dense kernels, bf16 autocast. Data: `train`
(records 0..44,999) of the local CIFAR-10 folder; `val` (45,000..49,999) after every epoch.

    pip install -e ".[bench]"
    python3 benchmarks/torch_reference.py --data-dir ../shared/data/cifar10 --epochs 60 \\
        --out benchmarks/recipe_runs/torch-r20-e60

Resumable: `OUT/checkpoint.pt` (weights, optimiser state, epoch) is written after every
epoch, and a rerun of the same command continues from it; `OUT/history.csv` holds each
epoch's train loss, train and val accuracy; `OUT/result.json` the final val accuracy.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import torch_resnet20  # noqa: E402

from keras_anytime import datasets  # noqa: E402

# CIFAR-10's per-channel statistics on 0..255 (the usual published figures)
MEAN = np.array([125.3, 123.0, 113.9], dtype="float32")
STD = np.array([63.0, 62.1, 66.7], dtype="float32")


def augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pad 4 with zeros, crop a random 32x32 window, flip half the images: (B, 32, 32, 3)."""
    b = len(images)
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    top, left = rng.integers(0, 9, b), rng.integers(0, 9, b)
    out = np.stack([padded[i, t : t + 32, s : s + 32] for i, (t, s) in enumerate(zip(top, left))])
    flip = rng.random(b) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def to_tensor(images: np.ndarray):
    """uint8 (B, H, W, 3) -> normalised float32 (B, 3, H, W) in channels_last memory."""
    import torch

    x = torch.from_numpy((images.astype("float32") - MEAN) / STD).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


def lr_at(step: int, steps_per_epoch: int, epochs: int, peak: float) -> float:
    """One warm-up epoch (linear from 0), then cosine from `peak` to 0."""
    if step < steps_per_epoch:
        return peak * step / steps_per_epoch
    done = (step - steps_per_epoch) / max(1, (epochs - 1) * steps_per_epoch)
    return 0.5 * peak * (1 + math.cos(math.pi * done))


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Last-exit accuracy on (x, y), in 0..1."""
    import torch

    model.eval()
    right = 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(x), batch):
            logits = model(to_tensor(x[i : i + batch]))[-1]
            right += int((logits.argmax(1).numpy() == y[i : i + batch]).sum())
    model.train()
    return right / len(x)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="peak, at --batch-size")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = datasets.load_numpy(args.data_dir, "train")
    x_val, y_val = datasets.load_numpy(args.data_dir, "val")
    y, y_val = y.astype("int64"), y_val.astype("int64")
    torch.manual_seed(args.seed)
    model = torch_resnet20().to(memory_format=torch.channels_last)
    # kernels (convolution, Dense) are the parameters of 2 or more dimensions
    decayed = [p for p in model.parameters() if p.dim() > 1]
    others = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD(
        [{"params": decayed, "weight_decay": args.weight_decay}, {"params": others}],
        lr=0.0,
        momentum=0.9,
        nesterov=True,
    )
    steps = len(x) // args.batch_size  # the last partial batch is dropped
    start = 0
    checkpoint = out / "checkpoint.pt"
    if checkpoint.is_file():
        state = torch.load(checkpoint)
        if state["args"] != vars(args):
            raise ValueError(
                f"{checkpoint} was written with other arguments ({state['args']}); rerun with "
                "those, or give another --out."
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = state["epoch"]
        print(f"resuming at epoch {start + 1} of {args.epochs}")
    history = out / "history.csv"
    rows = history.read_text().splitlines()[1:] if history.is_file() else []
    # an epoch logged but not checkpointed (stopped in between) is run again
    kept = [r for r in rows if int(r.split(",")[0]) < start]
    history.write_text("\n".join(["epoch,seconds,train_loss,train_acc,val_acc", *kept]) + "\n")
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng([args.seed, epoch])
        order = rng.permutation(len(x))
        began, loss_sum, right = time.perf_counter(), 0.0, 0
        for i in range(steps):
            rows = order[i * args.batch_size : (i + 1) * args.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch * steps + i, steps, args.epochs, args.lr)
            images, labels = to_tensor(augment(x[rows], rng)), torch.from_numpy(y[rows])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(images)[-1]
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss)
            right += int((logits.argmax(1) == labels).sum())
        seconds = time.perf_counter() - began
        train_acc, val_acc = right / (steps * args.batch_size), evaluate(model, x_val, y_val)
        with history.open("a", newline="") as f:
            csv.writer(f).writerow(
                [epoch, round(seconds, 1), round(loss_sum / steps, 4), train_acc, val_acc]
            )
        print(f"epoch {epoch + 1}/{args.epochs} {seconds:.0f}s loss {loss_sum / steps:.4f} "
              f"train {train_acc:.4f} val {val_acc:.4f}", flush=True)  # fmt: skip
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1}
        torch.save({**state, "args": vars(args)}, checkpoint)
    result = {"val_accuracy_last_exit": evaluate(model, x_val, y_val), "args": vars(args)}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
