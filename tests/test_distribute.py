"""AdaLoss under tf.distribute: MirroredStrategy on 2 logical CPUs, and a 2-process
MultiWorkerMirroredStrategy on loopback. Each run is a subprocess (TF's device setup is
process-wide)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
SCRIPT = str(TESTS / "distributed_run.py")


def _env(**extra):
    path = os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": path, **extra}


def _result(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _run(mode: str, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, SCRIPT, mode, *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return _result(out.stdout)


def test_mirrored_two_devices_matches_single_device():
    single, mirrored = _run("single"), _run("mirrored")
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert single["steps"] == mirrored["steps"] == 16
    np.testing.assert_allclose(mirrored["avg"], single["avg"], rtol=1e-5)
    np.testing.assert_allclose(mirrored["w"], single["w"], rtol=1e-5)
    assert not np.allclose(single["w"], 1.0)


def test_mirrored_regularised_model_matches_single_device():
    """L2 losses count once, not once per replica: the loss and one step's weights of a
    regularised model equal one device's."""
    single, mirrored = _run("single", "l2"), _run("mirrored", "l2")
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["loss"] == pytest.approx(single["loss"], abs=1e-5)
    for a, b in zip(mirrored["weights"], single["weights"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_two_processes_on_loopback():
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(
            subprocess.Popen(
                [sys.executable, SCRIPT, "multiworker"],
                env=_env(TF_CONFIG=json.dumps(tf_config)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-3000:]
            results.append(_result(stdout))
    finally:
        for proc in procs:
            proc.kill()
    assert [r["replicas"] for r in results] == [2, 2]
    assert results[0]["steps"] == results[1]["steps"] == 16
    np.testing.assert_allclose(results[0]["w"], results[1]["w"], rtol=1e-6)
