"""Keras' backend for this process, chosen by params.yaml's train.backend.

Keras reads KERAS_BACKEND once, when it is first imported, so every stage module that uses Keras
imports this one first, as Keras' own examples set the variable before `import keras`. The
backend's own pieces (devices, seeding, determinism, replicas, batch normalization) live in
stages/tensorflow_parts.py and stages/jax_parts.py, with the same names in both.
"""

import os
import sys

from stages import params

NAME = params.load_backend()

if "keras" in sys.modules and sys.modules["keras"].backend.backend() != NAME:
    raise SystemExit(f"train.backend is {NAME}, but Keras was imported with "
                     f"{sys.modules['keras'].backend.backend()} before stages.backend")
os.environ["KERAS_BACKEND"] = NAME
# Memory as needed rather than all of it up front, so that two queue workers can share a GPU.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

if NAME == "jax":
    # Same params, same metrics on GPUs too (XLA is deterministic on CPUs already).
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_gpu_deterministic_ops" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    # Keras imports TensorFlow for optional checks when it is installed (saving a model asks
    # whether a value is a tf.TensorShape). Hidden, a JAX run here behaves as on a GPU machine
    # without TensorFlow, and never loads a second framework beside JAX.
    sys.modules.setdefault("tensorflow", None)
    from stages import jax_parts as parts
else:
    from stages import tensorflow_parts as parts
