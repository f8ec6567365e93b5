"""Early-exit inference: run a multi-exit model stage by stage and stop each image at the
first exit confident enough, so easy images cost less compute than hard ones.

Modules: `stages` (cutting the model into stages and compiling them), `policy` (the
exit rule and the threshold fit, NumPy only) and `predictor` (`EarlyExitPredictor`).

`EarlyExitPredictor(model)` cuts the model into stages, one per exit: stage k computes
what exit k reads that stages 1..k-1 did not compute, then exit k's head (lazily: what
the anytime order runs beside an exit, the finer scales of an MSDNet block, waits for
the first later exit that reads it). Each image
leaves at the first exit k whose largest class probability is >= `thresholds[k-1]`; the
last exit takes every image left. Later stages run only on the images still in.

Thresholds come from `calibrate` (budgeted mode: the MSDNet procedure, Huang et al.,
ICLR 2018) or are set by hand; `predict_at(x, k)` runs exits 1..k only (anytime mode).
`calibrate` at several budgets keeps a table of them; `predict(x, budget=b)` uses the
thresholds of the largest calibrated budget at or below `b`, and `export` writes the
table into one SavedModel or LiteRT model whose `serve(images, budget)` chooses per call
(`export` module).

Costs are MACs of one image (`keras_anytime.flops`). An image leaving at exit k costs
`exit_macs[k-1]`: everything stages 1..k run, the heads of exits 1..k included, as
`exit_flops(model, include_earlier_exits=True, lazy=True)[k-1]` counts it.

Saved form (`save(path)`): the model as the `.keras` file `path`, and a JSON sidecar
`path + ".early_exit.json"`:

    {"format": "keras_anytime.early_exit", "version": 1,
     "num_exits": K, "exit_macs": [K ints, cumulative MACs of one image],
     "thresholds": [K - 1 floats in [0, 1], for exits 1..K-1],
     "from_logits": bool, "budget": float in (0, 1] or null (thresholds set by hand),
     "budgets": [{"budget", "thresholds", "average_macs", "accuracy"}, ...]}

"thresholds" and "budget" are those `predict` uses without a budget (the largest
calibrated budget's); "budgets" is the budget table, smallest budget first, with the MACs
per image and the accuracy reached on the calibration images. A sidecar without
"budgets" loads as a table of its one budget (none when "budget" is null).
"""

from keras_anytime.inference.policy import assign_exits, exit_proportions, thresholds_for
from keras_anytime.inference.predictor import SIDECAR_SUFFIX, EarlyExitPredictor

__all__ = [
    "SIDECAR_SUFFIX",
    "EarlyExitPredictor",
    "assign_exits",
    "exit_proportions",
    "thresholds_for",
]
