"""Run the training queue (queue/queue.json) from its first unfinished run, in order.

A run is finished when its `out` folder holds eval.json, which `keras-anytime train`
writes last. An unfinished run resumes from `out/backup` (Keras's BackupAndRestore) when
that exists, else starts from scratch; its run.json lists every start with the epoch it
began at, its precision and hardware. A run that fails stops the queue: the next one must
not start before it is looked at.

    nohup .venv/bin/python queue/resume.py >> runs/queue.log 2>&1 &
    python3 queue/resume.py --list   # the queue and each run's state
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUEUE = ROOT / "queue" / "queue.json"


def state(run: dict) -> str:
    out = ROOT / run["out"]
    if (out / "eval.json").is_file():
        return "finished"
    metadata = out / "backup" / "training_metadata.json"
    if metadata.is_file():
        epoch = json.loads(metadata.read_text())["epoch"]
        return f"resumable after epoch {epoch}"  # BackupAndRestore counts finished epochs
    return "not started"


def argv(run: dict) -> list[str]:
    words = shlex.split(run["command"])
    if words[0] != "keras-anytime":
        raise ValueError(f"{run['name']}: a queued command starts with keras-anytime.")
    if words[words.index("--out") + 1] != run["out"]:
        raise ValueError(f"{run['name']}: its command's --out is not its out folder.")
    return [sys.executable, "-m", "keras_anytime.cli", *words[1:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the queue and stop")
    args = parser.parse_args()
    runs = json.loads(QUEUE.read_text())["runs"]
    if args.list:
        for run in runs:
            print(f"{run['name']:28} {state(run):28} {run['out']}")
        return 0
    for run in runs:
        if state(run) == "finished":
            continue
        command = argv(run)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"[{stamp}] {run['name']}: {state(run)}; {shlex.join(command)}", flush=True)
        code = subprocess.call(command, cwd=ROOT)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        if code != 0:
            print(f"[{stamp}] {run['name']} exited with {code}: the queue stops.", flush=True)
            return code
        print(f"[{stamp}] {run['name']} finished.", flush=True)
    print("The queue is done.", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
