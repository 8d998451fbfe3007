"""The TensorFlow backend's pieces of the train stage; stages/lib/jax_parts.py has the same
names. Imported through stages.lib.backend.parts(), after use() has set KERAS_BACKEND.
"""

import contextlib

import keras
import tensorflow as tf

# MirroredStrategy splits a batch that the replicas do not divide (an epoch's short last one).
EQUAL_SHARDS = False


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
