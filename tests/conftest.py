"""Fixtures that make small real MNIST-format data and run the stages as a user would."""

import gzip
import hashlib
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from benchmark.recipes import recipe_params as composed_recipe

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Tests that build or load models in this process do so on TensorFlow, as a command that
    starts with stages.lib.backend.use("tensorflow") would. The commands that tests start choose
    their own, as from a user's shell: KERAS_BACKEND is not passed on to them. pytest-xdist's
    controller runs no test, so it skips the 6 s of importing TensorFlow."""
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        return
    from stages.lib import backend

    backend.use("tensorflow", verbose=True)
    import keras  # noqa: F401 (reads KERAS_BACKEND now, once)

    del os.environ["KERAS_BACKEND"]


# pytest-xdist: tests that share an expensive module or session fixture run in one worker, which
# builds it once (SHARED_FIXTURE: module -> group); every other test is scheduled on its own.
# Those groups start first, then the other slow tests, so that the workers finish together.
SHARED_FIXTURE = {"test_team.py": "history", "test_review.py": "history",  # conftest's history
                  "test_sweep.py": "sweep", "test_resume.py": "resume",
                  "test_cluster_sweep.py": "cluster",
                  "test_predict.py": "trained", "test_serve.py": "trained"}


def worker_group(nodeid):
    return SHARED_FIXTURE.get(Path(nodeid.split("::", 1)[0]).name, nodeid)


def pytest_collection_modifyitems(items):
    def rank(item):
        if worker_group(item.nodeid) != item.nodeid:
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: in collection order within a rank


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # keep pytest_collection_modifyitems' order
    return SharedFixtureScheduling(config, log)


MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def real_mnist():
    """The folder that MNIST_MIRROR names, as the fetch stage reads it, when it holds MNIST's four
    files; None otherwise (unset, a URL, or a folder without them)."""
    folder = Path(os.environ.get("MNIST_MIRROR", ""))
    if str(folder) in ("", ".") or not all((folder / name).is_file() for name in MNIST_FILES.values()):
        return None
    return folder


needs_real_mnist = pytest.mark.skipif(real_mnist() is None,
                                      reason="needs real MNIST: set MNIST_MIRROR to its folder")


def idx_bytes(array, magic):
    """An IDX file's bytes: big-endian magic, one int32 per dimension, then uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    return struct.pack(f">{1 + array.ndim}i", magic, *array.shape) + array.tobytes()


def write_gz(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content))
    return path


def synthetic_digits(count, seed):
    """Learnable stand-ins for digits: each label lights its own 7x7 square of a noisy 28x28.

    One label in five is random, so accuracy stays below 1 and differs between training runs.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    images = rng.integers(0, 40, (count, 28, 28), dtype=np.uint8)
    for image, label in zip(images, labels):
        row, column = divmod(int(label), 4)
        image[2 + 7 * row : 8 + 7 * row, 1 + 7 * column : 7 + 7 * column] = 255
    relabelled = rng.random(count) < 0.2
    labels[relabelled] = rng.integers(0, 10, relabelled.sum(), dtype=np.uint8)
    return images, labels


def write_mirror(folder, train_count=300, test_count=100):
    """A folder laid out like an MNIST mirror of synthetic digits; returns the MD5 table of its
    decompressed content."""
    return write_digits(folder, synthetic_digits(train_count, seed=1),
                        synthetic_digits(test_count, seed=2))


def write_digits(folder, train, test):
    """A mirror of these (images, labels) pairs; returns the MD5 table of its content."""
    (train_images, train_labels), (test_images, test_labels) = train, test
    contents = {
        MNIST_FILES["train_images"]: idx_bytes(train_images, 2051),
        MNIST_FILES["train_labels"]: idx_bytes(train_labels, 2049),
        MNIST_FILES["test_images"]: idx_bytes(test_images, 2051),
        MNIST_FILES["test_labels"]: idx_bytes(test_labels, 2049),
    }
    for name, content in contents.items():
        write_gz(Path(folder) / name, content)
    return {name: hashlib.md5(content).hexdigest() for name, content in contents.items()}


def project_params():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


MNIST_SOURCES = "stages/mnist_sources.yaml"


def write_mnist_sources(project, md5s, mirrors=None):
    """The project's stages/mnist_sources.yaml with these MD5s (and mirrors, if given)."""
    path = Path(project) / MNIST_SOURCES
    sources = yaml.safe_load((ROOT / MNIST_SOURCES).read_text())
    sources["files"] = md5s
    if mirrors is not None:
        sources["mirrors"] = mirrors
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(sources, sort_keys=False))


def recipe_params(name="strong"):
    """params.yaml's values with a recipe of conf/recipe/, composed as `dvc exp run` composes it."""
    return composed_recipe(name)


COMPOSE = """import os, sys
from dvc.utils.hydra import compose_and_dump
compose_and_dump("params.yaml", os.path.abspath("conf"), None, "config", os.path.abspath("conf"),
                 sys.argv[1:])
"""


def compose(project, env, *overrides):
    """Write the project's params.yaml from its conf/ as `dvc exp run -S ...` would, stamp included."""
    run([sys.executable, "-c", COMPOSE, *overrides], project, env)


def override(key, value):
    """key=value in Hydra's override syntax, the value written as YAML flow."""
    flow = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return f"{key}={flow.removesuffix('...').strip()}"


def set_defaults(project, **changes):
    """Change conf/config.yaml, the project's defaults, by dotted key."""
    set_dotted(Path(project) / "conf/config.yaml", changes)


def run_stage(name, cwd, env=None, check=True):
    """Run `python -m stages.<name>` in `cwd` as DVC would, with this checkout's code."""
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{name}"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stages.{name} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def tiny_mirror(tmp_path):
    """(folder, md5 table) of a tiny synthetic MNIST mirror."""
    folder = tmp_path / "mirror"
    return folder, write_mirror(folder)


@pytest.fixture(scope="session")
def mnist_mirror(tmp_path_factory):
    """(folder, md5 table) of a mirror of real MNIST's first 6,000 training and 1,000 test digits
    when MNIST_MIRROR names a folder of it (what the tests need, parsed and scored in a fraction
    of the time), else of 3,000 and 500 synthetic ones."""
    from stages.lib.idx import read_pair

    folder, source = tmp_path_factory.mktemp("mirror"), real_mnist()
    if source is None:
        return folder, write_mirror(folder, train_count=3000, test_count=500)

    def first(part, count):
        images, labels = read_pair(source / MNIST_FILES[f"{part}_images"],
                                   source / MNIST_FILES[f"{part}_labels"])
        return images[:count], labels[:count]

    return folder, write_digits(folder, first("train", 6000), first("test", 1000))


def ignore_sigint():
    """A subprocess's preexec_fn: start as a background job of a non-interactive shell does,
    with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


HIDE_TENSORFLOW = """import sys
sys.modules["tensorflow"] = None  # every `import tensorflow` raises ImportError
"""


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory):
    """Environment variables of a JAX run here: a sitecustomize on PYTHONPATH that makes
    TensorFlow unimportable, as on a machine that has none (the GPU machine of
    benchmark/gpu_run.py), and one JAX compilation cache for the session, so that a process
    compiling a training step that an earlier one compiled (a rerun, a resumed run) loads it."""
    folder = tmp_path_factory.mktemp("jax")
    (folder / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
    env = {"PYTHONPATH": str(folder), "JAX_COMPILATION_CACHE_DIR": str(folder / "cache")}
    check = subprocess.run([sys.executable, "-c", "import tensorflow"],
                           env={**os.environ, **env}, capture_output=True)
    assert check.returncode != 0, "the sitecustomize did not hide TensorFlow"
    return env


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def pipeline_env(mirror):
    """The environment a user's shell has: the venv's `python` first, MNIST_MIRROR set."""
    return {
        **os.environ,
        **GIT_IDENTITY,
        "MNIST_MIRROR": str(mirror),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "0",  # TensorFlow's INFO lines: tests look for XLA's among them
    }


def run_capturing(command, cwd, env):
    """Run a command (a list; "dvc" runs this venv's DVC); fail loudly; return (stdout, stderr)."""
    if command[0] == "dvc":
        command = [sys.executable, "-m", "dvc", *command[1:]]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout, result.stderr


def run(command, cwd, env):
    return run_capturing(command, cwd, env)[0]


def stages_run(output):
    """The stages that `dvc repro` output says it ran."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def set_params(project, **changes):
    """Edit params.yaml by hand, by dotted key (no composition: `dvc repro` runs it as it is)."""
    set_dotted(Path(project) / "params.yaml", changes)


def set_dotted(path, changes):
    """Change a YAML file's values by dotted key (missing mappings on the way are added)."""
    values = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = values
        for parent in parents:
            target = target.setdefault(parent, {})
        target[key] = value
    path.write_text(yaml.safe_dump(values, sort_keys=False))


OOD_DIGITS = 22  # of each part in each draw: every way of drawing twice
OOD_NOT_DIGITS = 2  # of each kind in each part and draw
MNIST_C_DIGITS = 100  # of the test digits, under each corruption


def make_project(destination, mirror, md5s, recipe="tutorial", **params):
    """A fresh git repository holding the project, its defaults (conf/config.yaml) changed by
    `params`, and params.yaml composed from them with a recipe of conf/recipe/; returns its env."""
    copy_project(destination)
    env = pipeline_env(mirror)
    write_mnist_sources(destination, md5s)
    (destination / "params.yaml").unlink()
    params = {"ood.count": OOD_DIGITS, "ood.not_digits": OOD_NOT_DIGITS,
              "mnist_c.count": MNIST_C_DIGITS, **params}
    set_defaults(destination, **params)
    # Given again on the command line, as they win over a recipe's values there.
    compose(destination, env, f"recipe={recipe}", *(override(key, value)
                                                    for key, value in params.items()))
    run(["git", "init", "-q"], destination, env)
    run(["git", "add", "-A"], destination, env)
    run(["git", "commit", "-qm", "project"], destination, env)
    return env


def copy_project(destination):
    """The files git would commit (tracked or not ignored), as a fresh clone would have them."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


VARIANT_LEARNING_RATE = 0.01  # barely trains in one epoch: its accuracy surely differs
TINY = {"train.epochs": 1, "evaluate.batch_size": 100, "plot.grid_size": 16}


@pytest.fixture(scope="session")
def history(tmp_path_factory):
    """A repository with two commits, each trained on a tiny synthetic slice: a baseline and a
    variant with a tiny learning rate. Returns (path, env, baseline rev, variant rev)."""
    root = tmp_path_factory.mktemp("team")
    md5s = write_mirror(root / "mirror", train_count=500, test_count=200)
    project = root / "project"
    env = make_project(project, root / "mirror", md5s, **TINY)

    revisions = []
    for learning_rate in (1.0, VARIANT_LEARNING_RATE):
        # Composed, as `dvc exp run -S` writes it, so that the clones' experiments may write it.
        compose(project, env, f"train.optimizer.learning_rate={learning_rate}")
        run(["dvc", "repro"], project, env)
        run(["git", "add", "-A"], project, env)
        run(["git", "commit", "-qm", f"learning rate {learning_rate}"], project, env)
        revisions.append(run(["git", "rev-parse", "HEAD"], project, env).strip())
    return project, env, *revisions


@pytest.fixture(scope="session")
def trained(tmp_path_factory, mnist_mirror):
    """A project whose model was trained briefly (1 epoch) on real MNIST when MNIST_MIRROR has it,
    else on synthetic digits: for the tests of mnist-predict and mnist-serve."""
    project = tmp_path_factory.mktemp("predict") / "project"
    env = make_project(project, *mnist_mirror, **{"train.epochs": 1})
    run(["dvc", "repro", "train"], project, env)
    return project


def model_md5_in(lock_text):
    """The MD5 that a dvc.lock's text records for the trained model."""
    outs = yaml.safe_load(lock_text)["stages"]["train"]["outs"]
    return next(out["md5"] for out in outs if out["path"] == "data/model/model.keras")


def file_md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def clone(history, destination):
    project, env, *_ = history
    run(["git", "clone", "-q", str(project), str(destination)], destination.parent, env)
    return destination


def arc(centre_x, centre_y, radius_x, radius_y, start, end, points=24):
    """Points along an ellipse from angle start to end, in degrees, clockwise on screen from
    3 o'clock."""
    return [(centre_x + radius_x * math.cos(math.radians(angle)),
             centre_y + radius_y * math.sin(math.radians(angle)))
            for angle in np.linspace(start, end, points)]


# Each digit as a person draws it: strokes of points in a unit box (x right, y down).
DIGIT_STROKES = {
    0: [arc(0.5, 0.5, 0.27, 0.4, -90, 270, 40)],
    1: [[(0.55, 0.1), (0.5, 0.5), (0.45, 0.9)]],
    2: [arc(0.5, 0.32, 0.25, 0.22, 190, 390) + [(0.22, 0.88), (0.82, 0.88)]],
    3: [arc(0.48, 0.3, 0.24, 0.19, 200, 450) + arc(0.48, 0.68, 0.28, 0.21, 270, 520)],
    4: [[(0.5, 0.1), (0.2, 0.62), (0.85, 0.62)], [(0.65, 0.3), (0.63, 0.92)]],
    5: [[(0.78, 0.12), (0.32, 0.12), (0.29, 0.46)] + arc(0.5, 0.66, 0.27, 0.22, 225, 500)],
    6: [[(0.7, 0.1), (0.48, 0.28), (0.33, 0.5)] + arc(0.52, 0.68, 0.21, 0.2, 180, 540)],
    7: [[(0.18, 0.14), (0.82, 0.14), (0.42, 0.9)]],
    8: [[(0.5 + 0.22 * math.sin(2 * t), 0.5 - 0.39 * math.cos(t))
         for t in np.linspace(0, 2 * math.pi, 48)]],
    9: [arc(0.5, 0.32, 0.22, 0.2, 0, -360, 36) + [(0.7, 0.5), (0.66, 0.9)]],
}
