"""The tutorial as its readers run it, ported plainly to Keras 3: the baseline to beat.

Only two changes from the 2018 script: Adadelta's learning rate is set to Keras 2.1.5's 1.0, and
the data comes from the IDX files. Prints one JSON line: fit seconds, test accuracy, peak memory.
Usage: python benchmark/plain_tutorial.py RAW_DIR TRAIN_LIMIT EPOCHS BATCH_SIZE
"""

import json
import resource
import sys
import time
from pathlib import Path

import keras

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stages.lib.idx import read_pair  # noqa: E402

raw_dir, train_limit, epochs, batch_size = Path(sys.argv[1]), *map(int, sys.argv[2:5])
x_train, y_train = read_pair(raw_dir / "train-images-idx3-ubyte.gz", raw_dir / "train-labels-idx1-ubyte.gz")
x_test, y_test = read_pair(raw_dir / "t10k-images-idx3-ubyte.gz", raw_dir / "t10k-labels-idx1-ubyte.gz")
x_train, y_train = x_train[:train_limit], y_train[:train_limit]

x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
y_train = keras.utils.to_categorical(y_train, 10)
y_test = keras.utils.to_categorical(y_test, 10)

model = keras.Sequential([
    keras.Input(shape=(28, 28, 1)),
    keras.layers.Conv2D(32, kernel_size=(5, 5), activation="relu"),
    keras.layers.Conv2D(64, (5, 5), activation="relu"),
    keras.layers.MaxPooling2D(pool_size=(2, 2)),
    keras.layers.Flatten(),
    keras.layers.Dropout(0.5),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dropout(0.5),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(loss=keras.losses.categorical_crossentropy,
              optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-7),
              metrics=["accuracy"])

started = time.perf_counter()
model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2)
fit_seconds = time.perf_counter() - started
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(json.dumps({
    "fit_seconds": fit_seconds,
    "test_accuracy": test_accuracy,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
