#!/usr/bin/env bash
# Install the package in .venv if needed, then resume the training queue in the background
# (one run at a time; the log is runs/queue.log).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import keras_anytime" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet -e .
fi
mkdir -p runs
if pgrep -f "queue/resume.py" >/dev/null; then
  echo "The queue is already running: runs/queue.log"
  exit 0
fi
nohup .venv/bin/python queue/resume.py >> runs/queue.log 2>&1 &
echo "Queue started (pid $!): runs/queue.log"
