"""Time to accuracy: the seconds of training the train stage counts, and the time_to that
evaluate derives from them."""

import time

import keras
import numpy as np
import pandas as pd

from stages.evaluate import time_to
from stages.lib.training import EpochTimer

VALIDATION_PAUSE = 0.4


class SlowValidation(keras.callbacks.Callback):
    def on_test_batch_end(self, batch, logs=None):
        time.sleep(VALIDATION_PAUSE)


def test_seconds_of_training_leave_validation_out_and_continue_after_a_resume():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    images, labels = np.zeros((32, 4), "float32"), np.zeros(32, "int32")
    resumed_after = [{"training_seconds": 100.0}]
    timer = EpochTimer(len(images), resumed_after)
    history = model.fit(images, labels, epochs=2, verbose=0, validation_data=(images, labels),
                        callbacks=[SlowValidation(), timer])

    epoch_seconds = history.history["epoch_seconds"]
    assert all(seconds < VALIDATION_PAUSE for seconds in epoch_seconds)
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
