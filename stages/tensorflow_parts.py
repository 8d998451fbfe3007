"""The TensorFlow backend's pieces of the train stage; stages/jax_parts.py has the same names.

Imported through stages.backend, after KERAS_BACKEND is set.
"""

import contextlib

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="mnist_dvc")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, computed by TensorFlow's fused kernel on image batches.

    Keras 3 builds batch normalization from separate element-wise ops, which made an epoch of
    the strong recipe (docs/recipes.md) about 1.5x as long on a CPU as without it; with its fused
    kernel (what Keras 2 used) an epoch at batch 100 took about 20.5 s instead of 33-36 s. Same
    weights and config; the moving variance follows the unbiased batch variance (Keras' the
    biased one). Other cases (masks, renormalization, statistics synchronized across replicas,
    the dense layers' 2-D batches) take Keras' own path. A script that loads a model with these
    layers imports stages.model first (stages.model.load_model does).
    """

    def call(self, inputs, training=None, mask=None):
        if (mask is not None or self.renorm or self.synchronized or len(inputs.shape) != 4
                or self.axis not in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones(channels)
        beta = self.beta if self.center else tf.zeros(channels)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1 - self.momentum)
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs


BatchNormalization = FusedBatchNormalization


def batch_norm_options(replicated):
    """With several replicas, each would otherwise normalize by its own part of the batch and keep
    its own moving averages, of which the saved model holds the first replica's: synchronized
    statistics are those of the whole batch."""
    return {"synchronized": replicated}


def gpus():
    """(name, compute capability) of each visible GPU."""
    details = [tf.config.experimental.get_device_details(gpu)
               for gpu in tf.config.list_physical_devices("GPU")]
    return [(found.get("device_name", "unknown GPU"), found.get("compute_capability", (0, 0)))
            for found in details]


def versions():
    return {"tensorflow": tf.__version__}  # not from package metadata: tensorflow-cpu is one too


def seed_everything(seed):
    """Python, NumPy, TensorFlow and Keras' own seeds."""
    keras.utils.set_random_seed(seed)


def deterministic_ops(xla):
    """TensorFlow's op determinism, which Keras switches off under XLA; True where it is on."""
    if xla:
        print("train: xla on, so TensorFlow op determinism is off (reruns may differ slightly)")
        return False
    tf.config.experimental.enable_op_determinism()
    return True


def jit_compile(xla):
    return xla


def distribution(name):
    """(scope, replicas) for train.distribute: mirrored is tf.distribute.MirroredStrategy, one
    replica per GPU, or without GPUs one per logical CPU device (two in the tests)."""
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
        return strategy.scope(), strategy.num_replicas_in_sync
    return contextlib.nullcontext(), 1


def unsupported(train, gpu_list):
    """One line naming a train combination this backend cannot run here, or None."""
    if train["xla"] and gpu_list and any(train["augment"].values()):
        return ("train.xla: true with train.augment on a GPU: TensorFlow has no XLA GPU kernel "
                "for the augmentation's image transform (ImageProjectiveTransformV3, "
                "keras-team/keras#20191); set train.xla: false, or train.backend: jax")
    return None
