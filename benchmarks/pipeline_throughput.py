"""Input pipeline throughput against the model's training throughput, in the same run.

The pipeline is `keras_anytime.datasets.load("cifar10", "train")` from the local NumPy
folder (shuffle, pad-crop-flip augmentation, batch 128), iterated alone. The model is the
9-exit AnytimeResNet-20 trained with AdaLoss on in-memory batches (float32). The pipeline
must not be the bottleneck: ratio >= 5.

    python3 benchmarks/pipeline_throughput.py --data-dir ../shared/data/cifar10
"""

import argparse
import json
import time

import keras
import numpy as np
from timing import StepTimer  # benchmarks/timing.py

from keras_anytime import datasets
from keras_anytime.applications import AnytimeResNet
from keras_anytime.callbacks import AdaLoss


def pipeline_rate(data_dir: str, batches: int, batch_size: int) -> float:
    ds = datasets.load("cifar10", "train", data_dir, batch_size=batch_size)
    it = iter(ds)
    for _ in range(10):  # warm-up: fill the shuffle buffer and the prefetch queue
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def model_rate(steps: int, batch_size: int) -> float:
    model = AnytimeResNet(20)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * steps, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size * steps)
    timer = StepTimer()
    model.fit(x, y, batch_size=batch_size, verbose=0, callbacks=[AdaLoss(), timer])
    return batch_size / float(np.median(timer.times[2:]))  # past tracing and warm-up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    pipe = pipeline_rate(args.data_dir, args.batches, args.batch_size)
    train = model_rate(args.steps, args.batch_size)
    print(json.dumps({"pipeline_img_per_s": round(pipe), "training_img_per_s": round(train),
                      "ratio": round(pipe / train, 1)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
