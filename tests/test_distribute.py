"""train.distribute: mirrored, on two logical CPU devices standing in for two GPUs."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, make_project, project_params, run, set_params

TWO_CPU_DEVICES = """
from stages.lib import backend
backend.use("tensorflow")
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
# The train stage, with a spy on what each replica's training step receives.
TRAIN_ON_TWO_CPU_DEVICES = TWO_CPU_DEVICES + """
import json, runpy
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
received = []
train_step = TensorFlowTrainer.train_step

def spy(self, data):
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    tf.py_function(lambda r, n: received.append((int(r), int(n))) or 0,
                   [replica, tf.shape(data[0])[0]], Tout=tf.int32)
    return train_step(self, data)

TensorFlowTrainer.train_step = spy
runpy.run_module("stages.train", run_name="__main__")
print("RECEIVED", json.dumps(received))
"""
# The train stage under JAX, with a spy on how Keras places each batch on the devices.
TRAIN_ON_TWO_JAX_DEVICES = """
import json, runpy
from stages.lib import backend
backend.use("jax")
import keras.src.backend.jax.distribution_lib as distribution_lib
received = []
distribute_data_input = distribution_lib.distribute_data_input

def spy(batch, layout, batch_dim_name):
    placed = distribute_data_input(batch, layout, batch_dim_name)
    received.append(sorted((shard.device.id, shard.data.shape[0])
                           for shard in placed.addressable_shards))
    return placed

distribution_lib.distribute_data_input = spy
runpy.run_module("stages.train", run_name="__main__")
print("RECEIVED", json.dumps(received))
"""


def received(output):
    return json.loads(output.split("RECEIVED ", 1)[1].splitlines()[0])
# One step of the default model's first dropout layer and of a synchronized batch normalization,
# both built as train builds them, on a batch whose two halves (one a replica) differ.
ONE_MIRRORED_STEP = TWO_CPU_DEVICES + """
import json, sys
import keras, numpy as np
parts = backend.parts()
from stages.lib.model import build_model
from stages.lib.training import reseed_layers

train = json.loads(sys.argv[1])
scope, _ = parts.distribution("mirrored")
with scope:
    strategy = tf.distribute.get_strategy()
    model = build_model(train)
    reseed_layers(model, train["seed"], epoch=0)
    dropout = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dropout))
    normalization = next(layer for layer in model.layers
                         if isinstance(layer, keras.layers.BatchNormalization))
halves = np.concatenate([np.zeros((4, 6400)), np.full((4, 6400), 10.0)]).astype("float32")
batch = next(iter(strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensors(halves).unbatch().batch(8))))
masks = strategy.run(lambda half: dropout(tf.ones_like(half), training=True), args=(batch,))
channels = normalization.moving_mean.shape[0]
features = strategy.run(lambda half: tf.reshape(half[:, :channels], (-1, 1, 1, channels)),
                        args=(batch,))
strategy.run(lambda half: normalization(half, training=True), args=(features,))
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "masks": [mask.numpy().tolist() for mask in strategy.experimental_local_results(masks)],
    "moving_means": [float(np.mean(copy.numpy()))
                     for copy in normalization.moving_mean.value.values],
    "momentum": normalization.momentum,
}))
"""


@pytest.mark.slow  # 9 s: the heaviest of the fast subset
def test_replicas_draw_their_own_dropout_and_share_batch_statistics():
    train = project_params()["train"]
    train["distribute"] = "mirrored"
    train["model"]["batch_norm"] = True
    result = subprocess.run([sys.executable, "-c", ONE_MIRRORED_STEP, json.dumps(train)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    step = json.loads(result.stdout.splitlines()[-1])

    assert step["replicas"] == 2
    first, second = (pd.DataFrame(mask).to_numpy() for mask in step["masks"])
    assert 0.4 < (first == 0).mean() < 0.6 and 0.4 < (second == 0).mean() < 0.6
    assert (first != second).mean() > 0.3, "both replicas dropped the same units"
    # The whole batch's mean is 5 (halves of 0 and 10); each half alone would give 0 or 10.
    expected = (1 - step["momentum"]) * 5.0
    assert step["moving_means"] == pytest.approx([expected, expected], rel=1e-5)


def training_log(project, metric="loss"):
    """Each epoch's running `metric` over the training batches, as DVCLive logged it."""
    log = pd.read_csv(project / f"data/train_log/plots/metrics/training_batches/{metric}.tsv",
                      sep="\t")
    return log[metric].tolist()


def trained(project, env, command):
    output = run(command, project, env)
    return output, training_log(project, "accuracy"), training_log(project, "loss")


@pytest.mark.slow
def test_mirrored_training_matches_single_device(tmp_path, mnist_mirror):
    project = tmp_path / "project"
    env = make_project(project, *mnist_mirror, **{"preprocess.train_limit": 3000, "train.epochs": 1})
    run(["dvc", "repro", "preprocess"], project, env)

    _, single_accuracy, single_loss = trained(project, env, [sys.executable, "-m", "stages.train"])
    set_params(project, **{"train.distribute": "mirrored"})
    output, accuracy, loss = trained(project, env, [sys.executable, "-c", TRAIN_ON_TWO_CPU_DEVICES])

    assert "train: mirrored across 2 replicas" in output
    run_record = json.loads((project / "data/train_log/metrics.json").read_text())["run"]
    assert run_record["distribute"] == {"requested": "mirrored", "replicas": 2}
    # Each replica's step gets half of each batch of 100, as many batches each (TensorFlow runs
    # the spy's Python asynchronously, so the count is checked per replica, not per step, and
    # the last of the epoch's 30 steps may not be counted yet).
    steps = received(output)
    assert sorted(map(tuple, set(map(tuple, steps)))) == [(0, 50), (1, 50)]
    assert steps.count([0, 50]) == steps.count([1, 50]) >= 25
    # Keras 3 has summed per-replica metrics before: accuracies above 1, losses doubled.
    assert all(0 < value <= 1 for value in accuracy)
    assert abs(loss[-1] - single_loss[-1]) < 0.3 * single_loss[-1]
    assert abs(accuracy[-1] - single_accuracy[-1]) < 0.03


@pytest.mark.slow
def test_jax_data_parallel_matches_single_device(tmp_path, tiny_mirror, jax_env):
    """Under JAX, mirrored is one SPMD program over the whole batch, split across the devices:
    the same dropout masks, augmentations and batch statistics as on one device, so the same
    training up to rounding."""
    project = tmp_path / "project"
    env = make_project(project, *tiny_mirror, recipe="strong", **{
        "train.backend": "jax", "train.epochs": 2, "preprocess.train_limit": 256,
        "preprocess.validation_split": 0.0,  # every image in the batches counted below
    })
    env.update(jax_env)
    run(["dvc", "repro", "preprocess"], project, env)

    run([sys.executable, "-m", "stages.train"], project, env)
    single = training_log(project)
    set_params(project, **{"train.distribute": "mirrored"})
    two_devices = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    output = run([sys.executable, "-c", TRAIN_ON_TWO_JAX_DEVICES], project, two_devices)

    assert "train: mirrored across 2 replicas" in output
    run_record = json.loads((project / "data/train_log/metrics.json").read_text())["run"]
    assert run_record["distribute"] == {"requested": "mirrored", "replicas": 2}
    # Every batch of 64 images (and its labels) lands as two halves, one a device: 4 steps in
    # each of 2 epochs, images and labels (and any batch Keras fetches ahead).
    placed = received(output)
    assert len(placed) >= 2 * 2 * 4
    assert all(devices == [[0, 32], [1, 32]] for devices in placed), placed
    # Sums over two devices round differently from sums over one: the first epoch's running loss
    # agrees to 1e-3, and eight Adam steps later the small differences have grown, not diverged.
    first, second = training_log(project)
    assert first == pytest.approx(single[0], rel=1e-3)
    assert second == pytest.approx(single[1], rel=2e-2)


# An epoch of 151 images in batches of 100 on two JAX CPU devices: the batches train stage makes,
# fed to Keras' data parallelism, and the refusal of a batch size two devices do not divide.
SHORT_LAST_BATCH_ON_TWO_JAX_DEVICES = """
import json
from stages.lib import backend
backend.use("jax")
import jax, keras, numpy as np
from stages.lib import jax_parts
from stages.lib.training import steps_per_epoch, training_batches

images = np.random.default_rng(0).random((151, 28, 28, 1)).astype("float32")
labels = np.eye(10, dtype="float32")[np.arange(151) % 10]
with keras.distribution.DataParallel(devices=jax.devices()).scope():
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    batches = list(training_batches(images, labels, 100, 0, 0, 1, multiple_of=2))
    model.fit((batch for batch in batches), epochs=1, steps_per_epoch=steps_per_epoch(151, 100, 2),
              verbose=0)
print(json.dumps({"devices": len(jax.devices()), "batches": [len(batch) for batch, _ in batches],
                  "refusal": jax_parts.unsupported({"distribute": "mirrored", "batch_size": 99}, [])}))
"""


@pytest.mark.slow
def test_jax_data_parallel_cuts_a_short_last_batch_and_refuses_an_uneven_batch_size(jax_env):
    result = subprocess.run(
        [sys.executable, "-c", SHORT_LAST_BATCH_ON_TWO_JAX_DEVICES], cwd=ROOT,
        env={**os.environ, **jax_env, "PYTHONPATH": f"{jax_env['PYTHONPATH']}{os.pathsep}{ROOT}",
             "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    # The short batch of 51 is cut to 50: two shards of 25, which Keras can place.
    assert found["devices"] == 2 and found["batches"] == [100, 50]
    assert found["refusal"] == ("train.batch_size: must be a multiple of the 2 devices that "
                                "distribute: mirrored splits each batch across on JAX, got 99")
