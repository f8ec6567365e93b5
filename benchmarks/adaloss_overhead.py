"""Step time of `fit` with AdaLoss against the same model with fixed `loss_weights`.

Both runs use the same 9-exit ResNet-20, the same synthetic CIFAR-sized batches and the same
compiled step; they differ only in the AdaLoss update inside the step. A third run, the same
graph as a plain `keras.Model` with Keras's own weighted loss, shows what AnytimeModel's
in-model weighting costs against stock Keras. Rounds alternate
between the two so drifts in machine load hit both alike; the figure is the ratio of the
median step times.

    python3 benchmarks/adaloss_overhead.py [--steps 20] [--rounds 6] [--batch-size 128]
"""

import argparse
import json

import keras
import numpy as np
from timing import StepTimer  # benchmarks/timing.py

from keras_anytime import weighting
from keras_anytime.applications import AnytimeResNet
from keras_anytime.callbacks import AdaLoss


def make(adaloss: bool):
    keras.utils.set_random_seed(0)
    model = AnytimeResNet(20)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        loss_weights=weighting.const(model.num_exits),
        metrics=["accuracy"],
    )
    callbacks = [AdaLoss(update_every=10)] if adaloss else []
    return model, callbacks


def make_plain_keras():
    """The same graph as a plain `keras.Model` with Keras's own weighted CompileLoss
    (labels repeated per exit): a reference for AnytimeModel's fixed-weight step."""
    keras.utils.set_random_seed(0)
    anytime = AnytimeResNet(20)
    model = keras.Model(anytime.inputs, anytime.outputs)
    k = len(model.outputs)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        ["sparse_categorical_crossentropy"] * k,
        loss_weights=weighting.const(k),
        metrics=[["accuracy"]] * k,
    )
    return model, k


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.steps * args.batch_size
    x = rng.integers(0, 256, (n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    plain, k = make_plain_keras()
    runs = {"fixed": make(False), "adaloss": make(True), "plain_keras": (plain, [])}

    def labels(name, n):
        return [y[:n]] * k if name == "plain_keras" else y[:n]

    times = {name: [] for name in runs}
    warm = 2 * args.batch_size
    for name, (model, callbacks) in runs.items():  # warm-up: trace and compile each
        model.fit(x[:warm], labels(name, warm), batch_size=args.batch_size, verbose=0,
                  callbacks=callbacks)  # fmt: skip
    for r in range(args.rounds):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))  # ABBA: cancels drift
        for name in order:
            model, callbacks = runs[name]
            timer = StepTimer()
            model.fit(x, labels(name, n), batch_size=args.batch_size, verbose=0,
                      callbacks=[*callbacks, timer])  # fmt: skip
            times[name].extend(timer.times[1:])  # the first step of a fit includes setup
    medians = {name: float(np.median(t)) for name, t in times.items()}
    result = {
        "backend": keras.config.backend(),
        "batch_size": args.batch_size,
        "steps_timed": {name: len(t) for name, t in times.items()},
        "median_step_s": medians,
        "ratio_adaloss_over_fixed": medians["adaloss"] / medians["fixed"],
        "ratio_fixed_over_plain_keras": medians["fixed"] / medians["plain_keras"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
