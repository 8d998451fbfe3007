"""The CNN, built from params.yaml's train section with plain Keras 3 and compiled with its
optimizer, and the recipe's scaling of the stored images. Import it after
stages.lib.backend.use(): it imports Keras. Its own layers are in augmentation.py and
batch_norm.py, the optimizer in optimizer.py.
"""

import keras
import numpy as np

from stages.lib.augmentation import augmentation_layers
from stages.lib.batch_norm import batch_normalization
from stages.lib.optimizer import build_optimizer
from stages.lib.splits import NUM_CLASSES


def model_inputs(images, labels):
    """The recipe's preprocessing: (N, 28, 28, 1) float32 in [0, 1], labels one-hot."""
    scaled = images.reshape(-1, 28, 28, 1).astype("float32") / 255
    return scaled, np.eye(NUM_CLASSES, dtype="float32")[labels]


def with_activation(layer_class, arguments, batch_norm, activation):
    """A convolution or dense layer and its activation, with batch normalization between them
    when asked (the layer then needs no bias: normalization subtracts it). batch_norm is None,
    or the arguments of the normalization layer (under JAX, none: an empty mapping)."""
    if batch_norm is None:
        return [layer_class(**arguments, activation=activation)]
    return [layer_class(**arguments, use_bias=False), batch_normalization(batch_norm),
            keras.layers.Activation(activation)]


def feature_layers(conv_stack, batch_norm, activation):
    layers = []
    for item in conv_stack:
        if "max_pool" in item:
            layers.append(keras.layers.MaxPooling2D(item["max_pool"]))
        elif "dropout" in item:
            layers.append(keras.layers.Dropout(item["dropout"]))
        else:
            layers += with_activation(keras.layers.Conv2D, item, batch_norm, activation)
    return layers


def batch_norm_arguments(train):
    """None without batch normalization, else its options: statistics over the whole batch when
    several TensorFlow replicas share it (on JAX, one program computes them so)."""
    if not train["model"]["batch_norm"]:
        return None
    replicated = train["distribute"] != "none" and keras.backend.backend() == "tensorflow"
    return {"synchronized": True} if replicated else {}


@keras.saving.register_keras_serializable(package="mnist_dvc")
class InkNormalization(keras.layers.Layer):
    """Each image's paper brought to black and its strongest ink to full white: the median pixel
    (the paper, since ink covers less than half of a digit's field) subtracted, then what
    remains divided by the brightest pixel's height above it, clipped to [0, 1]. MNIST's own
    digits, on black paper with full-white ink, pass unchanged; in training and prediction alike,
    so a digit on grey paper or under uneven light reaches the CNN as MNIST's would."""

    def __init__(self, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})

    def call(self, images):
        ops = keras.ops
        pixels = ops.sort(ops.reshape(images, (-1, images.shape[1] * images.shape[2])), axis=1)
        paper = pixels[:, (pixels.shape[1] - 1) // 2][:, None, None, None]
        ink = pixels[:, -1][:, None, None, None] - paper
        return ops.clip((images - paper) / ops.maximum(ink, 1e-3), 0, 1)


def build_model(train, name="mnist_cnn"):
    """Augmentation, the ink normalization when asked, the convolution stack, dense layers with
    dropout, softmax: the seed CNN with the defaults of params.yaml."""
    model = train["model"]
    batch_norm = batch_norm_arguments(train)
    layers = [keras.Input(shape=(28, 28, 1)), *augmentation_layers(train["augment"])]
    if model["normalize_ink"]:
        layers.append(InkNormalization())
    layers += feature_layers(model["conv_stack"], batch_norm, model["activation"])
    layers += [keras.layers.Flatten(), keras.layers.Dropout(model["dropout"])]
    for units in model["dense_units"]:
        layers += with_activation(keras.layers.Dense, {"units": units}, batch_norm,
                                  model["activation"])
        layers.append(keras.layers.Dropout(model["dropout"]))
    # float32 probabilities whatever the precision policy: mixed-precision softmax loses accuracy.
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"))
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="mnist_dvc")
class Shifted(keras.layers.Layer):
    """The images moved `rows` pixels down and `columns` right (negative: up, left), the pixels
    moved in black, as around a handwritten digit."""

    def __init__(self, rows, columns, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.rows, self.columns = rows, columns

    def call(self, images):
        rows, columns = self.rows, self.columns
        height, width = images.shape[1:3]
        padded = keras.ops.pad(images, [[0, 0], [max(rows, 0), max(-rows, 0)],
                                        [max(columns, 0), max(-columns, 0)], [0, 0]])
        top, left = max(-rows, 0), max(-columns, 0)
        return padded[:, top:top + height, left:left + width, :]

    def get_config(self):
        return {**super().get_config(), "rows": self.rows, "columns": self.columns}


def with_test_time_shifts(model, shift):
    """The trained model as train saves it: with shift 0, itself; else one model that averages
    its probabilities over each image and four copies moved `shift` pixels up, down, left and
    right (test-time augmentation), so that evaluate, predict and serve all read digits so."""
    if not shift:
        return model
    images = keras.Input(shape=(28, 28, 1))
    views = [images] + [Shifted(rows, columns)(images)
                        for rows, columns in ((-shift, 0), (shift, 0), (0, -shift), (0, shift))]
    probabilities = keras.layers.Average(dtype="float32")([model(view) for view in views])
    return keras.Model(images, probabilities, name=f"{model.name}_shift_averaged")


def averaged(models):
    """One model whose probabilities are the mean of `models`' (an ensemble), or the one model."""
    if len(models) == 1:
        return models[0]
    images = keras.Input(shape=(28, 28, 1))
    probabilities = keras.layers.Average(dtype="float32")([model(images) for model in models])
    return keras.Model(images, probabilities, name="mnist_cnn_ensemble")


def compile_model(model, train, steps_per_epoch):
    """The model compiled with train's label smoothing and optimizer; returns it."""
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train["label_smoothing"]),
        optimizer=build_optimizer(train, steps_per_epoch),
        metrics=["accuracy"],
    )
    return model


def load_model(path):
    """keras.models.load_model, on whichever backend runs; importing this module registers the
    project's own layers, which the file names."""
    return keras.models.load_model(path)
