"""Every random stream of a training run, derived from train.seed by NumPy's SeedSequence.

SeedSequence hashes its whole input, so two streams whose (seed, purpose, layer, epoch, replica)
differ anywhere are unrelated. Adding an index to the seed is not: seed 1 at layer 3 would draw
what seed 3 draws at layer 1.
"""

import numpy as np

# What a stream is for, the first word of its spawn key, so the purposes never share a stream.
BATCH_ORDER, LAYER = 0, 1
# Keras' TensorFlow backend takes seeds modulo 2**31 - 2 before its stateless random ops: a larger
# stream id could land on a smaller one there.
STREAM_IDS = 2**31 - 2


def batch_order(seed, epoch, count):
    """The order in which an epoch visits the `count` training images."""
    stream = np.random.SeedSequence(seed, spawn_key=(BATCH_ORDER, epoch))
    return np.random.default_rng(stream).permutation(count)


def layer_stream(seed, layer, epoch, replica):
    """The state of a layer's keras.random.SeedGenerator for one epoch on one replica: a stream id,
    then the counter that Keras advances by one a draw."""
    stream = np.random.SeedSequence(seed, spawn_key=(LAYER, layer, epoch, replica))
    return [int(stream.generate_state(1, np.uint64)[0] % STREAM_IDS), 0]
