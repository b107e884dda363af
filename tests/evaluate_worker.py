"""Runs `evaluate` on the streaming tests' data under a strategy; writes the report as JSON.

python tests/evaluate_worker.py OUT.json MODE BATCH [BOOTSTRAP]
MODE: "one" (no strategy), "mirrored2" (MirroredStrategy over 2 logical CPUs), "multi-worker"
(MultiWorkerMirroredStrategy from TF_CONFIG). Used by tests/test_evaluate_distributed.py.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf

from evaluation import distribute


def main(out: str, mode: str, batch: int, bootstrap: int = 50) -> None:
    if mode == "mirrored2":
        cpu = tf.config.list_physical_devices("CPU")[0]
        two = [tf.config.LogicalDeviceConfiguration()] * 2
        tf.config.set_logical_device_configuration(cpu, two)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "multi-worker":
        strategy = distribute.make_strategy("multi-worker", timeout_s=40)
    else:
        strategy = None
    import evaluation
    from tests.test_evaluate_streaming import IMAGES, LABELS, tiny_model

    n = int(os.environ.get("EVAL_EXAMPLES", len(IMAGES)))
    data = tf.data.Dataset.from_tensor_slices((IMAGES[:n], LABELS[:n])).batch(batch)
    report = evaluation.evaluate(
        tiny_model(),
        data,
        os.environ.get("EVAL_SUITES", "study,consistency"),
        from_logits=True,
        verbose=0,
        bootstrap=bootstrap,
        strategy=strategy,
    )
    result = {
        "results": report.results,
        "consistency": report.consistency,
        "meta": report.meta,
        "chief": distribute.is_chief(strategy),
        "replicas": (strategy or tf.distribute.get_strategy()).num_replicas_in_sync,
    }
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:]))
