#!/usr/bin/env bash
# Train (or continue) a zoo run on a lent GPU machine: JAX with CUDA, no TensorFlow.
#
# Prepare on this machine, once per session (ignored folders, carried to the device):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl keras==3.15.1 namex optree
#   mkdir -p .data && cp ../shared/data/cifar10/train-jpeg.npz .data/
# Then through the device tool, `run` with carry [".whl", ".data", "runs/NAME"] (runs/NAME
# only when continuing) and timeout_s a minute above TRAIN_SECONDS:
#   TRAIN_SECONDS=420 bash zoo/gpu_train.sh NAME --family resnet --depth 56 --epochs 180 \
#     --mixed-precision --batch-size 128
# The run folder comes back under the reply's files_at; copy it to runs/NAME and rerun
# the same command to resume from its last epoch (BackupAndRestore), or, once finished,
# `keras-anytime zoo add runs/NAME --name ... --hardware "NVIDIA H100, JAX"` here.
set -euo pipefail
name=$1
shift
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" KERAS_BACKEND=jax PYTHONUNBUFFERED=1
out=${OUT:?set OUT: the folder whose files come back}
nvidia-smi -L || true
status=0
timeout "${TRAIN_SECONDS:-420}" python3 -m keras_anytime.cli train --data-dir .data \
  --out "runs/$name" --verbose 2 "$@" 2>&1 | tee "$out/train.log" || status=$?
# at most 8 files come back: the run's own files and its per-epoch backup
mkdir -p "$out/$name/backup"
for f in run.json history.csv best.weights.h5 eval.json model.keras backup/latest.weights.h5 \
  backup/training_metadata.json; do
  if [ -f "runs/$name/$f" ]; then cp "runs/$name/$f" "$out/$name/$f"; fi
done
echo "train exit status $status (124: stopped at TRAIN_SECONDS; rerun to resume)"
