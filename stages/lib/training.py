"""The train stage's pieces that need Keras: callbacks for timing, reseeding, checkpoints, signals,
an ensemble's validation and DVCLive, and the seeded batches. Import it after
stages.lib.backend.use()."""

import contextlib
import signal
import time

import keras
import numpy as np
from dvclive import Live

from stages.lib import checkpoint, seeds
from stages.lib.model import with_test_time_shifts


class EpochTimer(keras.callbacks.Callback):
    """Adds to each epoch's logs its seconds of training, the training images a second, and the
    seconds of training since the run began (`training_seconds`, continued from the epochs a
    resumed run had done). Validation is left out of all three: a run that checks more
    validation images does not train slower for it."""

    FIGURES = ("epoch_seconds", "images_per_second", "training_seconds")

    def __init__(self, images, history):
        super().__init__()
        self.images = images
        self.training_seconds = history[-1]["training_seconds"] if history else 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.validating = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):
        self.validation_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validating += time.perf_counter() - self.validation_started

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started - self.validating
        self.training_seconds += seconds
        logs.update(epoch_seconds=seconds, images_per_second=self.images / seconds,
                    training_seconds=self.training_seconds)


def reseed_layers(model, seed, epoch, member=0):
    """Restarts the random stream of every layer that has one (dropout, RandomAffine) from
    (seed, member, layer, epoch, replica).

    Keras does not save these streams with a model, so without this a resumed run would draw
    other dropout masks and augmentations than an uninterrupted one. Under a tf.distribute
    strategy each replica holds its own copy of a stream (Keras creates them unaggregated); given
    the same state, the replicas would drop the same units of their halves of a batch. Under
    JAX's data parallelism a stream is one state that draws for the whole batch (replica 0).
    """
    for index, layer in enumerate(model.layers):
        stream = getattr(layer, "seed_generator", None)
        if isinstance(stream, keras.random.SeedGenerator):
            replicas = getattr(stream.state.value, "values", (stream.state,))
            for replica, state in enumerate(replicas):
                state.assign(seeds.layer_stream(seed, index, epoch, replica, member))


class EpochSeeds(keras.callbacks.Callback):
    """Calls reseed_layers at the start of every epoch of a member."""

    def __init__(self, seed, member):
        super().__init__()
        self.seed, self.member = seed, member

    def on_epoch_begin(self, epoch, logs=None):
        reseed_layers(self.model, self.seed, epoch, self.member)


class Checkpoint(keras.callbacks.Callback):
    """Saves the resume state after every epoch, before DVCLive logs it."""

    def __init__(self, history, run_fingerprint, finished):
        super().__init__()
        self.history, self.run_fingerprint, self.finished = history, run_fingerprint, finished

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({name: float(value) for name, value in logs.items()})
        checkpoint.save(self.model, self.history, self.run_fingerprint, self.finished)


def saved_probabilities(model, shift, images):
    """What the member saved with its test-time shifts (with_test_time_shifts) gives each image."""
    return with_test_time_shifts(model, shift).predict(images, batch_size=1000, verbose=0)


class EnsembleValidation(keras.callbacks.Callback):
    """After every epoch of an ensemble's member: the validation loss (cross-entropy, without
    label smoothing) and accuracy of the ensemble as train would save it then, the finished
    members' probabilities averaged with this member's, each with its test-time shifts. Keras'
    own validation would score the member alone. Place it after EpochTimer, which then leaves it
    out of the seconds of training."""

    def __init__(self, images, labels, finished_probabilities, shift):
        super().__init__()
        self.images, self.labels, self.shift = images, labels, shift
        self.finished = finished_probabilities

    def set_model(self, model):
        super().set_model(model)
        # Wrapped once a member: a new wrapper every epoch would make Keras trace predict again.
        self.saved = with_test_time_shifts(model, self.shift)

    def probabilities(self):
        """The member's probabilities, as saved, with its weights of now."""
        return self.saved.predict(self.images, batch_size=1000, verbose=0)

    def on_epoch_end(self, epoch, logs=None):
        averaged = np.mean([*self.finished, self.probabilities()], axis=0)
        loss = keras.losses.CategoricalCrossentropy()(self.labels, averaged)
        logs.update(val_loss=float(loss), val_accuracy=float(
            np.mean(averaged.argmax(axis=1) == self.labels.argmax(axis=1))))


def training_batches(images, labels, batch_size, seed, first_epoch, epochs, multiple_of=1,
                     member=0):
    """Batches for a member's epochs first_epoch..epochs-1, each in the order seeds.batch_order
    gives.

    The order depends on nothing else, so a run resumed at epoch k sees the same batches as an
    uninterrupted one, on either backend. Arrays are model inputs already (see model_inputs).
    An epoch's short last batch is cut to a multiple of `multiple_of` (the devices that split
    each batch in equal shards): fewer than that many images an epoch are left out, other ones
    each epoch.
    """
    for epoch in range(first_epoch, epochs):
        order = seeds.batch_order(seed, epoch, len(labels), member)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            batch = batch[:len(batch) - len(batch) % multiple_of]
            if len(batch):
                yield images[batch], labels[batch]


def steps_per_epoch(count, batch_size, multiple_of=1):
    """The batches training_batches makes of `count` images each epoch."""
    whole, rest = divmod(count, batch_size)
    return whole + (rest >= multiple_of)


class StopRequested(Exception):
    """Raised at a batch boundary once SIGINT or SIGTERM has arrived."""


class StopOnSignal(keras.callbacks.Callback):
    """Turns SIGINT and SIGTERM into a stop at the next batch boundary.

    The handlers are installed whatever the parent left: a process started in the background by
    a non-interactive shell inherits SIGINT ignored, so Python installs no KeyboardInterrupt
    handler, and a SIGINT sent to the run went unnoticed (it finished and exited 0). The handler
    only records the signal: an exception raised inside a handler can land in a destructor,
    which swallows it.
    """

    def __init__(self):
        super().__init__()
        self.received = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.record)

    def record(self, signum, frame):
        self.received = signum

    def on_train_batch_end(self, batch, logs=None):
        if self.received:
            raise StopRequested


def log_record(live, record, prefix):
    """Log a nested record as summary-only DVCLive metrics, so `dvc exp show` lists them."""
    for key, value in record.items():
        if isinstance(value, dict):
            log_record(live, value, f"{prefix}/{key}")
        else:
            live.log_metric(f"{prefix}/{key}", value, plot=False)


def live_name(keras_name):
    """Keras' name of an epoch's figure as a DVCLive metric. `loss` and `accuracy` are running
    means over the training batches (dropout, augmentation and label smoothing on), not the
    trained model's scores on the training set, which evaluate writes as train_set."""
    if keras_name.startswith("val_"):
        return f"validation/{keras_name.removeprefix('val_')}"
    if keras_name in EpochTimer.FIGURES:
        return f"speed/{keras_name}"
    return f"training_batches/{keras_name}"


def log_epoch(live, logs):
    for name, value in logs.items():
        live.log_metric(live_name(name), value)
    live.next_step()


class LiveEpochs(keras.callbacks.Callback):
    """Logs each epoch to DVCLive under live_name's names."""

    def __init__(self, live):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch, logs=None):
        log_epoch(self.live, logs)


@contextlib.contextmanager
def training_log(live_dir, history):
    """DVCLive's log in live_dir, the epochs an interrupted run completed logged again; yields
    the Live that fit logs the next epochs to."""
    # dvcyaml=False keeps dvc.yaml ours; save_dvc_exp=False leaves experiments to `dvc exp run`.
    with Live(live_dir, dvcyaml=False, save_dvc_exp=False) as live:
        for logs in history:
            log_epoch(live, logs)
        yield live


def fit(model, epochs, first_epoch, live, batches, steps_per_epoch, validation_data, callbacks):
    """model.fit over epochs first_epoch..epochs-1 of one member (those before it an
    interrupted run completed), each logged to `live`; a StopRequested ends it quietly."""
    try:
        if first_epoch < epochs:
            model.fit(
                batches,
                epochs=epochs,
                initial_epoch=first_epoch,
                shuffle=False,  # the batches are already in their seeded order
                steps_per_epoch=steps_per_epoch,
                validation_data=validation_data,
                callbacks=[*callbacks, LiveEpochs(live)],
            )
        else:
            # A run killed between a member's last epoch and saving it: the state holds the
            # weights as trained, and fit, which would have swapped in their moving average
            # (use_ema) when it ended, has nothing left to run.
            model.optimizer.finalize_variable_values(model.trainable_variables)
    except StopRequested:
        pass  # the caller sees the signal in its StopOnSignal
