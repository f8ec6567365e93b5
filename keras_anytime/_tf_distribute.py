"""What `AnytimeModel` does differently under `tf.distribute` (MirroredStrategy,
MultiWorkerMirroredStrategy), so that it trains there as on one device.

Each function hands its input back unchanged on the other backends and with one replica;
each exists because Keras 3's TensorFlow trainer alone would go wrong there:

- `global_mean`: AdaLoss must take identical steps on every replica, so it reads the
  per-exit losses over the global batch, not over one replica's share.
- `scaled_for_replicas`: gradients are summed across replicas and Keras losses already
  divide by the replica count; a regularisation loss that every replica adds whole would
  count once per replica.
- `rank1_logs_under_multiworker`: Keras reduces logs across workers along axis 0, which
  fails on scalars.
- `local_first_batch`: Keras builds the model from the first distributed batch reduced
  across replicas, which fails under MultiWorkerMirroredStrategy.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = [
    "global_mean",
    "local_first_batch",
    "rank1_logs_under_multiworker",
    "scaled_for_replicas",
]


def global_mean(scaled_losses):
    """The batch-mean losses over all replicas, from losses scaled by 1/replicas.

    Keras losses divide by the replica count under tf.distribute (gradients are summed
    across replicas); summing the scaled values over replicas gives the global mean, the
    same value on every replica, so AdaLoss takes identical steps everywhere.

    Args:
        scaled_losses: this replica's losses, as Keras's losses return them.
    """
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            return context.all_reduce(tf.distribute.ReduceOp.SUM, scaled_losses)
    return scaled_losses


def scaled_for_replicas(loss):
    """`loss` divided by the replica count under tf.distribute, else `loss`.

    Gradients are summed across replicas, and Keras losses already divide by the replica
    count; a regularisation loss that every replica adds whole would count N times
    (Keras's own trainer scales it the same way, keras-team/keras#20609).

    Args:
        loss: a loss that every replica computes whole, such as a regulariser's.
    """
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            return loss / replicas
    return loss


def rank1_logs_under_multiworker(outputs):
    """Give each scalar log a batch axis of 1 under MultiWorkerMirroredStrategy.

    Keras 3 reduces logs across workers with `strategy.reduce("MEAN", v, axis=0)`, which
    fails on scalars (tensorflow/tensorflow#72388); with a (1,) axis it is the mean over
    workers. Other strategies and backends get `outputs` unchanged.

    Args:
        outputs: the logs a train or test step returns, {name: scalar}.
    """
    if keras.config.backend() != "tensorflow" or not isinstance(outputs, dict):
        return outputs
    import tensorflow as tf

    if not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return outputs
    return {k: ops.reshape(v, (1,)) for k, v in outputs.items()}


def local_first_batch(strategy, iterator, data_batch):
    """The first batch of a distributed `iterator`, each value the local replica's part.

    Keras 3.15 on TensorFlow mean-reduces the first distributed batch with
    strategy.reduce to build the model, which fails under MultiWorkerMirroredStrategy
    ("Attempt to convert a value (PerReplica...) to a Tensor"), for any Keras model. The
    local replica's batch has the same structure and shapes, so the model builds from
    that instead.

    Args:
        strategy: the model's `tf.distribute` strategy.
        iterator: Keras's epoch iterator over the distributed data set.
        data_batch: what to return when `iterator` holds no batch.
    """
    import tensorflow as tf

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    for _, _, batches in iterator:
        return keras.tree.map_structure(local, next(batches))
    return data_batch
