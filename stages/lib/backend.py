"""Keras' backend for this process, chosen by the command that starts it.

Keras reads KERAS_BACKEND once, when it is first imported, so a stage or command calls use()
before it imports Keras or any module that does (stages.lib.model, stages.lib.training, ...),
as Keras' own examples set the variable before `import keras`. Importing this module changes
nothing. The backends' training pieces (devices, seeding, determinism, replicas) are
stages/lib/tensorflow_parts.py and stages/lib/jax_parts.py, with the same names in both.
"""

import contextlib
import importlib
import importlib.util
import logging
import os
import sys

BACKENDS = ("tensorflow", "jax")


def available():
    """The backend a command uses when nothing names one: KERAS_BACKEND, else TensorFlow where
    it is installed, else JAX (a GPU machine may have JAX alone)."""
    if os.environ.get("KERAS_BACKEND") in BACKENDS:
        return os.environ["KERAS_BACKEND"]
    return "tensorflow" if importable("tensorflow") else "jax"


def importable(name):
    """Whether `import name` would find the package; one set to None in sys.modules (hidden, as
    on a machine without it) is not."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def use(name, verbose=False):
    """Make `name` Keras' backend in this process; unless verbose, hide the libraries' start-up
    log lines (TensorFlow's C++ notices, CUDA errors on a machine without a GPU, JAX's
    falling-back-to-CPU warning). A variable the user set wins over these defaults."""
    if name not in BACKENDS:
        raise SystemExit(f"backend: must be one of {', '.join(BACKENDS)}, got {name!r}")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != name:
        raise SystemExit(f"backend {name} asked for, but Keras was imported with "
                         f"{sys.modules['keras'].backend.backend()} first")
    os.environ["KERAS_BACKEND"] = name
    # Memory as needed rather than all of it up front, so that two queue workers can share a GPU.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    if name == "jax":
        # Same params, same metrics on GPUs too (XLA is deterministic on CPUs already).
        flags = os.environ.get("XLA_FLAGS", "")
        if "--xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
        # Keras imports TensorFlow for optional checks when it is installed (saving a model asks
        # whether a value is a tf.TensorShape). Hidden, a JAX run here behaves as on a GPU machine
        # without TensorFlow, and never loads a second framework beside JAX.
        sys.modules.setdefault("tensorflow", None)


@contextlib.contextmanager
def silenced_stderr(silent=True):
    """File descriptor 2 sent to /dev/null inside the block: TensorFlow's C++ start-up lines
    (absl's "before InitializeLog", CUDA drivers missing) ignore TF_CPP_MIN_LOG_LEVEL."""
    if not silent:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def parts():
    """The training pieces of the backend use() chose."""
    name = os.environ.get("KERAS_BACKEND", "tensorflow")
    return importlib.import_module(f"stages.lib.{name}_parts")
