"""What the workers of one run agree on: who is chief, the configuration, the restored state.

Under `MultiWorkerMirroredStrategy` every worker builds the same model, but only the chief reads
and writes the run directory. Before training, the workers compare their configurations (one
all-reduce of per-key fingerprints), then the chief's variables (restored from its checkpoint, or
freshly initialised) are broadcast to every worker, so all of them continue from the same epoch.
A lost worker surfaces as a failed or timed-out collective; `stop_when_a_worker_is_lost` turns it
into one `WorkerLost` message on every survivor.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from evaluation.distribute import sum_over_workers

# Collective failures when a peer dies (Unavailable: connection refused; Cancelled / Aborted:
# collectives aborted by TF's peer health check; DeadlineExceeded: the collective timeout).
LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
    tf.errors.DeadlineExceededError,
)


class WorkerLost(RuntimeError):
    """Another worker stopped answering; every worker stops, and the same commands resume."""


class WorkerConfigMismatch(ValueError):
    """The workers of one run were started with different configurations."""


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """How many processes train together (1 unless multi-worker)."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return sum(spec.num_tasks(job) for job in spec.jobs if job in ("chief", "worker")) or 1


def _fingerprint(value: object) -> float:
    """48 bits of a SHA-256 of `repr(value)`: exact in float64, so sums of one stay exact."""
    return float(int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:6], "big"))


def _from_chief(strategy: tf.distribute.Strategy, vector: tf.Tensor) -> tf.Tensor:
    """The chief's (replica 0's) `vector` on every worker: an all-reduce of it and zeros."""

    def replica_fn(local: tf.Tensor) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        return context.all_reduce(
            tf.distribute.ReduceOp.SUM, tf.where(first, local, tf.zeros_like(local))
        )

    result = tf.function(lambda v: strategy.run(replica_fn, args=(v,)))(vector)
    return strategy.experimental_local_results(result)[0]


def agree_on_configuration(
    strategy: tf.distribute.Strategy, settings: dict, chief_refusal: Exception | None = None
) -> None:
    """Checks that every worker has the chief's training settings, before any other work.

    Args:
        strategy: the run's strategy (does nothing with one worker).
        settings: this worker's training settings (`run_dir.training_settings`).
        chief_refusal: on the chief, the error that refuses the run directory, if any: it is
            raised on the chief, and a short pointer to it on the other workers.

    Raises:
        WorkerConfigMismatch: some worker's settings differ (names the keys, on every worker).
    """
    if worker_count(strategy) == 1:
        if chief_refusal:
            raise chief_refusal
        return
    keys = sorted(settings)
    mine = tf.constant(
        [0.0 if chief_refusal is None else 1.0] + [_fingerprint(settings[k]) for k in keys]
    )
    chiefs = _from_chief(strategy, tf.cast(mine, tf.float64)).numpy()
    if chiefs[0]:
        if chief_refusal:
            raise chief_refusal
        raise WorkerConfigMismatch(
            "the chief (worker 0) refused the run directory; see its message"
        )
    differs = np.array([a != b for a, b in zip(mine.numpy()[1:], chiefs[1:], strict=True)])
    votes = sum_over_workers(strategy, {"differs": differs.astype(np.float64)})["differs"]
    names = [key for key, vote in zip(keys, votes, strict=True) if vote]
    if names:
        raise WorkerConfigMismatch(
            f"the workers were started with different configurations ({', '.join(names)} differ "
            "from the chief's); start every worker with the same options"
        )


def broadcast_from_chief(
    strategy: tf.distribute.Strategy, variables: Sequence[tf.Variable], extra: Sequence[float]
) -> list[float]:
    """Gives every worker the chief's variable values and the chief's `extra` numbers.

    One all-reduce per dtype group (float32 variables, and everything else as float64, exact for
    iteration counters). Does nothing with one worker.

    Returns:
        The chief's `extra` numbers.
    """
    if worker_count(strategy) == 1:
        return list(extra)
    groups: dict[bool, list[tf.Variable]] = {True: [], False: []}
    for variable in variables:
        groups[variable.dtype == tf.float32].append(variable)
    for is_float32, members in groups.items():
        dtype = tf.float32 if is_float32 else tf.float64
        parts = [tf.reshape(tf.cast(tf.convert_to_tensor(v), dtype), [-1]) for v in members]
        if not is_float32:
            parts.append(tf.constant(list(extra), tf.float64))
        if not parts:
            continue
        flat = _from_chief(strategy, tf.concat(parts, axis=0))
        offset = 0
        for variable in members:
            size = int(tf.size(variable))
            chunk = tf.reshape(flat[offset : offset + size], variable.shape)
            variable.assign(tf.cast(chunk, variable.dtype))
            offset += size
        if not is_float32:
            extra = flat[offset:].numpy().tolist()
    return list(extra)


@contextlib.contextmanager
def stop_when_a_worker_is_lost(
    strategy: tf.distribute.Strategy, last_saved_epoch: Callable[[], int]
) -> Iterator[None]:
    """Turns a failed collective into `WorkerLost` (one clear line) when several workers train."""
    try:
        yield
    except LOST_WORKER_ERRORS as error:
        if worker_count(strategy) == 1:
            raise
        reason = (error.message or type(error).__name__).strip().splitlines()[0][:200]
        raise WorkerLost(
            f"lost contact with another worker ({type(error).__name__}: {reason}); this worker "
            f"stops. The checkpoint holds epoch {last_saved_epoch()}: run the same commands "
            "again on every worker to resume from it"
        ) from None
