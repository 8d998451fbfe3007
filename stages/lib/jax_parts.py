"""The JAX backend's pieces of the train stage; stages/lib/tensorflow_parts.py has the same
names. Imported through stages.lib.backend.parts(), after use() has set KERAS_BACKEND and
XLA_FLAGS. Nothing here imports TensorFlow.
"""

import contextlib
import random

import jax
import keras
import numpy as np

# Keras places each batch on the devices as equal shards, one a device: a batch that the devices
# do not divide cannot be placed (TensorFlow's MirroredStrategy splits an uneven batch itself).
EQUAL_SHARDS = True


def gpus():
    """(name, compute capability) of each visible GPU."""
    return [(device.device_kind,
             tuple(int(part) for part in getattr(device, "compute_capability", "0.0").split(".")))
            for device in jax.devices() if device.platform == "gpu"]


def versions():
    return {"jax": jax.__version__, "jaxlib": jax.lib.__version__}


def seed_everything(seed):
    """Python's and NumPy's seeds. Keras draws its layers' default seeds from Python's random
    module; keras.utils.set_random_seed would also import TensorFlow to seed it."""
    random.seed(seed)
    np.random.seed(seed)


def deterministic_ops(xla):
    """Deterministic by the XLA_FLAGS that stages.lib.backend.use() sets for GPUs; XLA:CPU always is."""
    return True


def jit_compile(xla):
    """JAX runs Keras' training step compiled, whatever train.xla says (uncompiled, op by op, it
    would be many times slower)."""
    if not xla:
        print("train: JAX compiles every training step with XLA; recorded as xla.used: true")
    return True


def distribution(name):
    """(scope, replicas) for train.distribute: mirrored is keras.distribution.DataParallel over
    every GPU, or without GPUs every CPU device (two in the tests, by XLA_FLAGS)."""
    if name == "mirrored":
        devices = jax.devices()
        return keras.distribution.DataParallel(devices=devices).scope(), len(devices)
    return contextlib.nullcontext(), 1


def unsupported(train, gpu_list):
    """One line naming a train combination this backend cannot run here, or None."""
    devices = len(jax.devices())
    if train["distribute"] == "mirrored" and train["batch_size"] % devices:
        return (f"train.batch_size: must be a multiple of the {devices} devices that "
                f"distribute: mirrored splits each batch across on JAX, got {train['batch_size']}")
    return None
