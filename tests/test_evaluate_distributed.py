"""evaluate under tf.distribute: MirroredStrategy over 2 logical CPUs and two local
MultiWorkerMirroredStrategy workers give the one-process report (counts exactly, floats to 1e-9).

The per-replica batch of the distributed runs (global batch 8 over 2 replicas) equals the
one-process batch (4), so even the model's float32 outputs are the same.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import evaluation
from evaluation import distribute
from tests.test_evaluate_streaming import IMAGES, LABELS, _assert_same_report, tiny_model

WORKER = os.path.join(os.path.dirname(__file__), "evaluate_worker.py")
EXAMPLES, SUITES, BOOTSTRAP = 16, "study,consistency", 50
TIMEOUT_S = 240  # hang guard per test, all processes together (a loaded shared machine is slow)


@pytest.fixture(scope="module")
def one_process():
    data = tf.data.Dataset.from_tensor_slices((IMAGES[:EXAMPLES], LABELS[:EXAMPLES])).batch(4)
    report = evaluation.evaluate(
        tiny_model(), data, SUITES, from_logits=True, verbose=0, bootstrap=BOOTSTRAP
    )
    return json.loads(json.dumps({"results": report.results, "consistency": report.consistency}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp_path, mode: str, configs: list[dict | None]) -> list[dict]:
    """Starts one worker process per TF_CONFIG (None: no TF_CONFIG), waits, kills leftovers."""
    procs = []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "EVAL_EXAMPLES": str(EXAMPLES)}
    env |= {"EVAL_SUITES": SUITES}
    try:
        for i, config in enumerate(configs):
            worker_env = {**env, "TF_CONFIG": json.dumps(config)} if config else env
            args = [sys.executable, WORKER, str(tmp_path / f"{i}.json"), mode, "8", str(BOOTSTRAP)]
            log = open(tmp_path / f"{i}.log", "w")
            procs.append((subprocess.Popen(args, env=worker_env, stdout=log, stderr=log), log))
        deadline = time.monotonic() + TIMEOUT_S
        for proc, _ in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    for i, (proc, _) in enumerate(procs):
        assert proc.returncode == 0, (tmp_path / f"{i}.log").read_text()[-3000:]
    return [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(len(configs))]


def test_mirrored_two_devices_equals_one_process(tmp_path, one_process):
    (out,) = _run(tmp_path, "mirrored2", [None])
    assert out["replicas"] == 2 and out["chief"]
    _assert_same_report(out["results"], one_process["results"], atol=1e-9)
    _assert_same_report(out["consistency"], one_process["consistency"], atol=1e-9)


def test_two_workers_equal_one_process(tmp_path, one_process):
    hosts = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    configs = [
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}} for i in range(2)
    ]
    outs = _run(tmp_path, "multi-worker", configs)
    assert [o["chief"] for o in outs] == [True, False] and outs[0]["replicas"] == 2
    for out in outs:
        _assert_same_report(out["results"], one_process["results"], atol=1e-9)
        _assert_same_report(out["consistency"], one_process["consistency"], atol=1e-9)
        assert out["meta"]["num_examples"] == EXAMPLES


def test_make_strategy_modes_and_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    assert distribute.make_strategy("auto") is tf.distribute.get_strategy()  # no GPUs here
    assert distribute.is_chief(None) and distribute.is_chief(tf.distribute.get_strategy())
    with pytest.raises(ValueError, match="allowed"):
        distribute.make_strategy("horovod")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.make_strategy("multi-worker")
    with pytest.raises(ValueError, match="host:port"):
        distribute.make_strategy("multi-worker", cluster="localhost", task_index=0)
    with pytest.raises(ValueError, match=r"task_index must be in 0\.\.1"):
        distribute.make_strategy("multi-worker", cluster="a:1,b:2", task_index=2)
    with pytest.raises(ValueError, match="need strategy"):
        distribute.make_strategy("mirrored", cluster="a:1,b:2", task_index=0)
