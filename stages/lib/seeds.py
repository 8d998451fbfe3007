"""Every random stream of a training run, derived from train.seed by NumPy's SeedSequence.

SeedSequence hashes its whole input, so two streams whose (seed, member, purpose, layer, epoch,
replica) differ anywhere are unrelated. Adding an index to the seed is not: seed 1 at layer 3
would draw what seed 3 draws at layer 1.

An ensemble's first member (and a single model) draws from (purpose, ...); member m > 0 from
(MEMBER, m, purpose, ...), so a first member trains exactly as the same recipe alone would.
"""

import numpy as np

# What a stream is for, the first word of its spawn key, so the purposes never share a stream.
BATCH_ORDER, LAYER, MEMBER, WEIGHTS = 0, 1, 2, 3
# Keras' TensorFlow backend takes seeds modulo 2**31 - 2 before its stateless random ops: a larger
# stream id could land on a smaller one there.
STREAM_IDS = 2**31 - 2


def _spawn_key(member, *words):
    return tuple(words) if member == 0 else (MEMBER, member, *words)


def batch_order(seed, epoch, count, member=0):
    """The order in which an epoch of a member's training visits the `count` training images."""
    stream = np.random.SeedSequence(seed, spawn_key=_spawn_key(member, BATCH_ORDER, epoch))
    return np.random.default_rng(stream).permutation(count)


def layer_stream(seed, layer, epoch, replica, member=0):
    """The state of a layer's keras.random.SeedGenerator for one epoch on one replica: a stream id,
    then the counter that Keras advances by one a draw."""
    stream = np.random.SeedSequence(seed, spawn_key=_spawn_key(member, LAYER, layer, epoch, replica))
    return [int(stream.generate_state(1, np.uint64)[0] % STREAM_IDS), 0]


def weights_seed(seed, member):
    """The global seed (Python, NumPy, Keras) set before a member's weights are initialized: the
    run's seed for the first member, a 32-bit seed of its own stream for the others."""
    if member == 0:
        return seed
    stream = np.random.SeedSequence(seed, spawn_key=_spawn_key(member, WEIGHTS))
    return int(stream.generate_state(1, np.uint32)[0])
