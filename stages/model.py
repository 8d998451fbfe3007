"""The CNN and its optimizer, built from params.yaml's train section with plain Keras 3."""

import keras

from stages.data import NUM_CLASSES


def build_model(model):
    """Convolutions, max-pooling, dense layers with dropout, softmax: the seed CNN by default."""
    layers = [keras.Input(shape=(28, 28, 1))]
    for filters in model["conv_filters"]:
        layers.append(
            keras.layers.Conv2D(filters, model["kernel_size"], activation=model["activation"])
        )
    layers += [
        keras.layers.MaxPooling2D(model["pool_size"]),
        keras.layers.Flatten(),
        keras.layers.Dropout(model["dropout"]),
    ]
    for units in model["dense_units"]:
        layers += [
            keras.layers.Dense(units, activation=model["activation"]),
            keras.layers.Dropout(model["dropout"]),
        ]
    # float32 probabilities whatever the precision policy: mixed-precision softmax loses accuracy.
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"))
    return keras.Sequential(layers, name="mnist_cnn")


def build_optimizer(optimizer):
    """A Keras optimizer from {name: ..., argument: value, ...}."""
    arguments = {key: value for key, value in optimizer.items() if key != "name"}
    return keras.optimizers.get({"class_name": optimizer["name"], "config": arguments})
