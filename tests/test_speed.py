"""Time to accuracy: the seconds of training the train stage counts, and the time_to that
evaluate derives from them."""

import time

import keras
import numpy as np
import pandas as pd

from stages import report
from stages.evaluate import time_to
from stages.lib.training import EpochTimer

VALIDATION_PAUSE = 0.4


class SlowValidation(keras.callbacks.Callback):
    """Sleeps through each validation batch, and times every epoch from outside the timer."""

    def __init__(self):
        super().__init__()
        self.epoch_walls = []

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        time.sleep(VALIDATION_PAUSE)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_walls.append(time.perf_counter() - self.began)


def test_seconds_of_training_leave_validation_out_and_continue_after_a_resume():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    images, labels = np.zeros((32, 4), "float32"), np.zeros(32, "int32")
    resumed_after = [{"training_seconds": 100.0}]
    slow, timer = SlowValidation(), EpochTimer(len(images), resumed_after)
    history = model.fit(images, labels, epochs=2, verbose=0, validation_data=(images, labels),
                        callbacks=[slow, timer])  # slow's epoch encloses the timer's

    epoch_seconds = history.history["epoch_seconds"]
    for seconds, wall in zip(epoch_seconds, slow.epoch_walls):
        assert 0 < seconds <= wall - VALIDATION_PAUSE
    assert history.history["training_seconds"] == [100.0 + epoch_seconds[0],
                                                   100.0 + sum(epoch_seconds)]
    assert history.history["images_per_second"][0] == 32 / epoch_seconds[0]


def test_time_to_is_the_first_epoch_at_each_accuracy():
    validation = pd.DataFrame({"epoch": [1, 2, 3, 4], "accuracy": [0.985, 0.9950, 0.9949, 0.9969]})
    seconds = pd.DataFrame({"epoch": [1, 2, 3, 4], "training_seconds": [10.0, 21.0, 33.0, 44.0]})
    assert time_to(validation, seconds) == {"accuracy_99": 21.0, "accuracy_99_5": 21.0,
                                            "accuracy_99_7": None}
    nothing_held_out = validation.iloc[:0]
    assert time_to(nothing_held_out, seconds) == dict.fromkeys(
        ["accuracy_99", "accuracy_99_5", "accuracy_99_7"])


def test_the_report_says_when_each_accuracy_was_reached():
    held_out = {"speed": {"training_seconds": 346.2}, "validation": {"accuracy": 0.9955},
                "time_to": {"accuracy_99": 120.6, "accuracy_99_5": 346.2, "accuracy_99_7": None}}
    assert report.time_to(held_out) == (
        "346 s of training in all; time to validation accuracy 0.99: 121 s, 0.995: 346 s, "
        "0.997: not reached.")
    nothing_held_out = {"speed": {"training_seconds": 90.0}, "time_to": dict.fromkeys(
        ["accuracy_99", "accuracy_99_5", "accuracy_99_7"])}
    assert report.time_to(nothing_held_out) == (
        "90 s of training in all; no validation images were held out, so no time to accuracy.")
