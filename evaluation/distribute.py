"""tf.distribute strategies from a command line's words, and sums over the workers of one.

`make_strategy` is shared by `python -m evaluation` and the training engine. Multi-worker runs
take their cluster from `TF_CONFIG` or from `cluster="host:port,host:port"` plus `task_index`
(task 0 is the chief). Keras 3's `fit`/`evaluate` fail under MultiWorkerMirroredStrategy
(keras-team/keras#20585), so users of a multi-worker strategy run their own loop (`strategy.run`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

MODES = ("auto", "default", "mirrored", "multi-worker")
# a worker that waits longer than this for a collective is stuck (a peer died): fail, don't hang
DEFAULT_TIMEOUT_S = 600.0


def _cluster_resolver(cluster: str | None, task_index: int | None):
    if cluster is None:
        if task_index is not None:
            raise ValueError("task_index needs cluster ('host:port,host:port')")
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("multi-worker needs TF_CONFIG or cluster='host:port,host:port'")
        return tf.distribute.cluster_resolver.TFConfigClusterResolver()
    hosts = [h.strip() for h in cluster.split(",") if h.strip()]
    if not hosts or not all(h.rpartition(":")[2].isdigit() for h in hosts):
        raise ValueError(f"cluster must be 'host:port,host:port,...', got {cluster!r}")
    if task_index is None or not 0 <= task_index < len(hosts):
        raise ValueError(f"task_index must be in 0..{len(hosts) - 1} for {len(hosts)} workers")
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": hosts}), task_type="worker", task_id=task_index
    )


def make_strategy(
    mode: str = "auto",
    cluster: str | None = None,
    task_index: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tf.distribute.Strategy:
    """A tf.distribute strategy.

    Args:
        mode: "default" (this process's default device), "mirrored" (every local GPU, or the CPU),
            "multi-worker" (MultiWorkerMirroredStrategy), "auto" (multi-worker when a cluster is
            given or TF_CONFIG is set, else mirrored on several GPUs, else default).
        cluster: "host:port,host:port,...", all the workers; otherwise TF_CONFIG is read.
        task_index: this process's position in `cluster` (0 is the chief).
        timeout_s: collectives that wait longer raise instead of hanging (multi-worker).

    Returns:
        the strategy. Create it before any other TensorFlow work in a multi-worker process.
    """
    if mode not in MODES:
        raise ValueError(f"unknown strategy {mode!r}; allowed: {list(MODES)}")
    if (cluster is not None or task_index is not None) and mode not in ("auto", "multi-worker"):
        raise ValueError(f"cluster/task_index need strategy 'multi-worker' or 'auto', not {mode!r}")
    if mode == "auto":
        if cluster is not None or task_index is not None or os.environ.get("TF_CONFIG"):
            mode = "multi-worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            mode = "mirrored"
        else:
            mode = "default"
    if mode == "default":
        return tf.distribute.get_strategy()
    if mode == "mirrored":
        return tf.distribute.MirroredStrategy()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=_cluster_resolver(cluster, task_index), communication_options=options
    )


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes results: True outside multi-worker runs, else task 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _num_workers(strategy: tf.distribute.Strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(spec.get(kind, [])) for kind in ("chief", "worker")) or 1


def sum_over_workers(
    strategy: tf.distribute.Strategy, arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Element-wise sums of each worker's arrays (same keys and shapes on every worker).

    One float64 all-reduce carries everything (integer counts below 2**53 stay exact). Replicas
    of one worker share its host arrays, so only each worker's first local replica contributes.
    """
    if _num_workers(strategy) == 1:
        return arrays
    keys = sorted(arrays)
    flat = np.concatenate([np.asarray(arrays[k], np.float64).ravel() for k in keys])
    local = len(strategy.extended.worker_devices)
    value = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(flat if ctx.replica_id_in_sync_group % local == 0 else 0 * flat)
    )
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None).numpy()
    out, start = {}, 0
    for k in keys:
        shape = np.shape(arrays[k])
        size = int(np.prod(shape))
        out[k] = total[start : start + size].reshape(shape)
        start += size
    return out
