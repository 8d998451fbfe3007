"""Random streams: no two seeds, ensemble members, layers, epochs or replicas share one; the batch
order is fixed by (seed, member, epoch) alone, and train.seed, train.batch_size and train.epochs
shape the batches."""

import itertools

import keras
import numpy as np
import pytest

from stages.lib import seeds
from stages.lib.model import build_model
from stages.lib.training import reseed_layers, steps_per_epoch, training_batches
from tests.conftest import project_params, recipe_params

EPOCHS, REPLICAS, MEMBERS = range(15), range(2), range(3)


def random_layers(model):
    return [index for index, layer in enumerate(model.layers)
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)]


def test_no_two_layer_streams_coincide(tmp_path):
    default = random_layers(build_model(project_params()["train"]))
    strong = random_layers(build_model(recipe_params("strong")["train"]))
    photo = random_layers(build_model(recipe_params("photo")["train"]))
    assert default == [4, 6] and len(strong) == 4  # dropout twice; augmentation and 3 dropouts
    assert photo[:3] == [0, 1, 2] and len(photo) == 6  # 3 augmentations, 3 dropouts
    layers = sorted({*default, *strong, *photo})
    streams = {}
    for seed, member, layer, epoch, replica in itertools.product(range(1, 11), MEMBERS, layers,
                                                                 EPOCHS, REPLICAS):
        # Keras advances the counter (the second word) by one a draw, so distinct stream ids
        # (the first word) keep whole epochs of draws apart, not only their first keys.
        stream_id, counter = seeds.layer_stream(seed, layer, epoch, replica, member)
        assert counter == 0 and 0 <= stream_id < seeds.STREAM_IDS
        streams.setdefault(stream_id, []).append((seed, member, layer, epoch, replica))
    shared = {stream: owners for stream, owners in streams.items() if len(owners) > 1}
    assert not shared
    assert len(streams) == 10 * len(MEMBERS) * len(layers) * len(EPOCHS) * len(REPLICAS)


def test_each_member_has_its_own_weights_seed_and_the_first_the_runs():
    assert seeds.weights_seed(7, 0) == 7
    drawn = {seeds.weights_seed(seed, member) for seed in range(1, 101) for member in (1, 2)}
    assert len(drawn) == 200 and drawn.isdisjoint(range(1, 101))
    assert all(0 <= seed <= 2**32 - 1 for seed in drawn)


def test_batch_order_is_a_permutation_fixed_by_seed_and_epoch():
    first = seeds.batch_order(1, 0, 1000)
    assert sorted(first) == list(range(1000))
    assert np.array_equal(first, seeds.batch_order(1, 0, 1000))
    assert np.array_equal(first, seeds.batch_order(1, 0, 1000, member=0))
    others = [seeds.batch_order(seed, epoch, 1000, member)
              for seed, epoch, member in [(2, 0, 0), (1, 1, 0), (0, 1, 0), (1, 0, 1), (1, 0, 2)]]
    assert all(np.mean(first == other) < 0.05 for other in others)


def batches(batch_size=64, seed=1, first_epoch=0, epochs=2, multiple_of=1, count=150):
    images = np.arange(count, dtype="float32").reshape(count, 1, 1, 1) * np.ones((1, 28, 28, 1), "float32")
    labels = np.arange(count, dtype="float32").reshape(count, 1)
    return [(batch_images[:, 0, 0, 0].astype(int), batch_labels[:, 0].astype(int))
            for batch_images, batch_labels in training_batches(
                images, labels, batch_size, seed, first_epoch, epochs, multiple_of)]


def test_training_batches_follow_seed_batch_size_and_epochs():
    two_epochs = batches()
    assert [len(images) for images, _ in two_epochs] == [64, 64, 22] * 2
    assert all(np.array_equal(images, labels) for images, labels in two_epochs)
    for epoch in range(2):
        visited = np.concatenate([images for images, _ in two_epochs[3 * epoch: 3 * epoch + 3]])
        assert np.array_equal(visited, seeds.batch_order(1, epoch, 150))
    assert [len(images) for images, _ in batches(batch_size=100, epochs=3)] == [100, 50] * 3
    other_seed = batches(seed=2)
    assert not np.array_equal(other_seed[0][0], two_epochs[0][0])
    resumed = batches(first_epoch=1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(resumed, two_epochs[3:], strict=True))
    assert batches(first_epoch=2) == []


@pytest.mark.parametrize("count, batch_size, devices, sizes", [
    (150, 64, 4, [64, 64, 20]),  # the short batch of 22 cut to 20
    (150, 64, 2, [64, 64, 22]),
    (131, 64, 4, [64, 64]),  # 3 images left: no whole shard each, no batch
    (128, 64, 4, [64, 64]),
])
def test_a_short_last_batch_is_cut_to_whole_shards(count, batch_size, devices, sizes):
    epoch = batches(batch_size, epochs=1, multiple_of=devices, count=count)
    assert [len(images) for images, _ in epoch] == sizes
    assert steps_per_epoch(count, batch_size, devices) == len(sizes)
    assert np.array_equal(np.concatenate([images for images, _ in epoch]),
                          seeds.batch_order(1, 0, count)[:sum(sizes)])


def test_reseeding_restarts_every_augmentation_stream_at_its_epoch(tmp_path):
    """What resume relies on: after reseed_layers(seed, epoch) both augmentation layers draw
    what they drew at that epoch before, whatever was drawn in between."""
    model = build_model(recipe_params("handwriting")["train"])
    assert [type(layer).__name__ for layer in model.layers[:2]] == ["RandomAffine", "RandomInk"]
    digits = np.random.default_rng(0).random((4, 28, 28, 1)).astype("float32")

    def augmented(epoch):
        reseed_layers(model, seed=1, epoch=epoch)
        return keras.ops.convert_to_numpy(model.layers[1](model.layers[0](digits, training=True),
                                                          training=True))

    first = augmented(3)
    augmented(4)
    assert np.array_equal(augmented(3), first)
    assert not np.allclose(augmented(4), first)
