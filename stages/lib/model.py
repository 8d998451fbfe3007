"""The CNN and its optimizer, built from params.yaml's train section with plain Keras 3, and the
recipe's scaling of the stored images. Import it after stages.lib.backend.use(): it imports Keras.

Its layers are registered under the same names whatever the backend, so a model trained on
either backend loads and predicts on the other.
"""

import math

import keras
import numpy as np

NUM_CLASSES = 10


def model_inputs(images, labels):
    """The recipe's preprocessing: (N, 28, 28, 1) float32 in [0, 1], labels one-hot."""
    scaled = images.reshape(-1, 28, 28, 1).astype("float32") / 255
    return scaled, np.eye(NUM_CLASSES, dtype="float32")[labels]


@keras.saving.register_keras_serializable(package="mnist_dvc")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras' BatchNormalization, computed by TensorFlow's fused kernel on image batches when
    TensorFlow is the backend.

    Keras 3 builds batch normalization from separate element-wise ops, which made an epoch of
    the strong recipe (conf/recipe/strong.yaml) about 1.5x as long on a CPU as without it; with its
    fused kernel (what Keras 2 used) an epoch at batch 100 took about 20.5 s instead of 33-36 s.
    Same weights and config; the moving variance follows the unbiased batch variance (Keras' the
    biased one). Other cases (masks, renormalization, statistics synchronized across replicas,
    the dense layers' 2-D batches) and other backends take Keras' own path, so a model saved on
    TensorFlow loads on JAX. Synchronized statistics are TensorFlow's alone: elsewhere the layer
    has one copy of them anyway.
    """

    def __init__(self, synchronized=False, **kwargs):
        super().__init__(synchronized=synchronized and keras.backend.backend() == "tensorflow",
                         **kwargs)

    def call(self, inputs, training=None, mask=None):
        if (keras.backend.backend() != "tensorflow" or mask is not None or self.renorm
                or self.synchronized or len(inputs.shape) != 4 or self.axis not in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the TensorFlow backend is running: it is loaded already

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones(channels)
        beta = self.beta if self.center else tf.zeros(channels)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1 - self.momentum)
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=self.moving_mean, variance=self.moving_variance,
            epsilon=self.epsilon, is_training=False,
        )
        return outputs


@keras.saving.register_keras_serializable(package="mnist_dvc")
class RandomAffine(keras.layers.Layer):
    """Rotates, shifts and zooms each training image by random amounts in one resampling.

    Keras' RandomRotation, RandomTranslation and RandomZoom resample one after another, and each
    bilinear pass blurs: on MNIST, grey pixels (neither ink nor paper) go from 10% of the image to
    24% after the three, 17% after one. Test digits are not blurred. So the three draws make one
    matrix and ops.image.affine_transform resamples once. Training only; empty space is black,
    as around a handwritten digit.
    """

    def __init__(self, rotation=0.0, shift=0.0, zoom=0.0, seed=None, **kwargs):
        # float32 whatever the precision policy: pixel resampling in bfloat16 loses grey levels.
        super().__init__(**{"dtype": "float32", **kwargs})
        self.rotation, self.shift, self.zoom, self.seed = rotation, shift, zoom, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        return self.transform(images, **self.draw(images))

    def draw(self, images):
        """Per image: angle (radians), scale, shift_x and shift_y (pixels), each uniform within
        the layer's limits."""
        height, width = images.shape[1:3]

        def uniform(limit):
            return keras.random.uniform(
                (keras.ops.shape(images)[0],), -limit, limit, seed=self.seed_generator
            )

        return {"angle": uniform(self.rotation * math.pi / 180), "scale": 1 + uniform(self.zoom),
                "shift_x": uniform(self.shift * width), "shift_y": uniform(self.shift * height)}

    @staticmethod
    def transform(images, angle, scale, shift_x, shift_y):
        """Each image resampled once through affine_rows."""
        height, width = images.shape[1:3]
        rows = affine_rows(angle, scale, shift_x, shift_y, height=height, width=width)
        return keras.ops.image.affine_transform(images, rows, fill_mode="constant")

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shift": self.shift,
                "zoom": self.zoom, "seed": self.seed}


def affine_rows(angle, scale, shift_x, shift_y, height, width):
    """One affine_transform row per image: output pixel (x, y) reads the input at
    centre + scale * rotation(angle) * ((x, y) - centre) - shift: a positive angle turns the
    digit anticlockwise as displayed, a scale above 1 shrinks it, a positive shift moves it right
    and down."""
    ops = keras.ops
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    a0, a1 = scale * ops.cos(angle), -scale * ops.sin(angle)
    b0, b1 = -a1, a0
    zeros = ops.zeros_like(a0)
    return ops.stack([
        a0, a1, centre_x - shift_x - a0 * centre_x - a1 * centre_y,
        b0, b1, centre_y - shift_y - b0 * centre_x - b1 * centre_y,
        zeros, zeros,
    ], axis=1)


@keras.saving.register_keras_serializable(package="mnist_dvc")
class RandomInk(keras.layers.Layer):
    """Draws each training digit as another pen, scanner or camera would: thicker or thinner
    strokes, an elastic wobble and blur, each by a random amount per image, then its ink brought
    back to full white, as predict prepares a user's digit (stages/lib/prepare.py): the model is
    trained on what predict feeds it.

    thickness (pixels, at most 1) blends the digit towards its 3x3 grey dilation or erosion;
    elastic (pixels) is the largest displacement of a smooth random field (Simard et al. 2003,
    smoothed by a Gaussian of ELASTIC_SMOOTHING pixels; Keras' own elastic_transform draws the
    x and y fields from one seed under TensorFlow, so they are equal); blur (pixels) is the
    largest Gaussian sigma, reached by blending towards the digit blurred by it. Training only;
    float32 like RandomAffine.
    """

    ELASTIC_SMOOTHING = 4.0

    def __init__(self, thickness=0.0, elastic=0.0, blur=0.0, seed=None, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.thickness, self.elastic, self.blur = thickness, elastic, blur
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training:
            return images
        ops = keras.ops
        per_image = (ops.shape(images)[0], 1, 1, 1)

        def uniform(low, high):
            return keras.random.uniform(per_image, low, high, seed=self.seed_generator)

        if self.thickness:
            amount = uniform(-self.thickness, self.thickness)
            thicker = ops.max_pool(images, 3, strides=1, padding="same")
            thinner = -ops.max_pool(-images, 3, strides=1, padding="same")
            target = ops.where(amount > 0, thicker, thinner)
            images = images + ops.abs(amount) * (target - images)
        if self.elastic:
            images = self.wobble(images)
        if self.blur:
            blurred = gaussian_blurred(images, self.blur)
            images = images + uniform(0, 1) * (blurred - images)
        strongest = ops.max(images, axis=(1, 2, 3), keepdims=True)
        return images / ops.maximum(strongest, 1e-6)

    def field(self, batch, height, width):
        """Per image, a smooth random displacement (rows, columns) in pixels, scaled so that its
        longest vector is `elastic` pixels long."""
        ops = keras.ops
        noise = keras.random.uniform((batch, height, width, 2), -1, 1, seed=self.seed_generator)
        field = gaussian_blurred(noise, self.ELASTIC_SMOOTHING)
        longest = ops.max(ops.sqrt(ops.sum(field**2, axis=-1)), axis=(1, 2))
        return field * ops.reshape(self.elastic / ops.maximum(longest, 1e-12), (-1, 1, 1, 1))

    def wobble(self, images):
        """Elastic distortion: each pixel read, bilinearly, from a point displaced by field()."""
        ops = keras.ops
        height, width = images.shape[1], images.shape[2]
        field = self.field(ops.shape(images)[0], height, width)
        rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1)) + field[..., 0]
        columns = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width)) + field[..., 1]
        return bilinear(images, rows, columns)

    def get_config(self):
        return {**super().get_config(), "thickness": self.thickness, "elastic": self.elastic,
                "blur": self.blur, "seed": self.seed}


def bilinear(images, rows, columns):
    """Single-channel images (batch, height, width, 1) read at the points (rows, columns), each
    (batch, height, width), by bilinear interpolation; black outside the image. Gathers from the
    flattened images, since Keras' map_coordinates needs a batch size known when TensorFlow
    traces the training step, and Keras feeds batches of unknown size."""
    ops = keras.ops
    height, width = images.shape[1], images.shape[2]
    flat = ops.reshape(images, (-1, height * width))
    top, left = ops.floor(rows), ops.floor(columns)
    read = ops.zeros_like(rows)
    for row in (top, top + 1):
        for column in (left, left + 1):
            weight = (1 - ops.abs(rows - row)) * (1 - ops.abs(columns - column))
            inside = (row >= 0) & (row <= height - 1) & (column >= 0) & (column <= width - 1)
            index = ops.clip(row, 0, height - 1) * width + ops.clip(column, 0, width - 1)
            index = ops.reshape(ops.cast(index, "int32"), (-1, height * width))
            values = ops.reshape(ops.take_along_axis(flat, index, axis=1), ops.shape(rows))
            read = read + ops.where(inside, weight * values, 0.0)
    return read[..., None]


def gaussian_blurred(images, sigma):
    """Each channel blurred by a Gaussian of `sigma` pixels, its kernel 3 sigmas each way."""
    side = 2 * math.ceil(3 * sigma) + 1
    return keras.ops.image.gaussian_blur(images, (side, side), (sigma, sigma))


AFFINE_KEYS = ("rotation", "shift", "zoom")
INK_KEYS = ("thickness", "elastic", "blur")


def augmentation_layers(augment):
    """RandomAffine when any of rotation (degrees), shift and zoom (fractions) is on, then
    RandomInk when any of its changes is: a recipe without them builds the model it always did."""
    layers = []
    if any(augment[key] for key in AFFINE_KEYS):
        layers.append(RandomAffine(*(augment[key] for key in AFFINE_KEYS)))
    if any(augment[key] for key in INK_KEYS):
        layers.append(RandomInk(*(augment[key] for key in INK_KEYS)))
    return layers


def batch_normalization(options):
    """TensorFlow's fused kernel on TensorFlow; Keras' own layer on JAX, where the SPMD program of
    a data-parallel step computes statistics over the whole batch by itself."""
    if keras.backend.backend() == "tensorflow":
        return FusedBatchNormalization(**options)
    return keras.layers.BatchNormalization(**options)


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


def build_model(train):
    """Augmentation, the convolution stack, dense layers with dropout, softmax: the seed CNN with
    the defaults of params.yaml."""
    model = train["model"]
    batch_norm = batch_norm_arguments(train)
    layers = [keras.Input(shape=(28, 28, 1)), *augmentation_layers(train["augment"])]
    layers += feature_layers(model["conv_stack"], batch_norm, model["activation"])
    layers += [keras.layers.Flatten(), keras.layers.Dropout(model["dropout"])]
    for units in model["dense_units"]:
        layers += with_activation(keras.layers.Dense, {"units": units}, batch_norm,
                                  model["activation"])
        layers.append(keras.layers.Dropout(model["dropout"]))
    # float32 probabilities whatever the precision policy: mixed-precision softmax loses accuracy.
    layers.append(keras.layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"))
    return keras.Sequential(layers, name="mnist_cnn")


def learning_rate(train, steps_per_epoch):
    """The optimizer's learning rate, or a Keras schedule of it stepped by the optimizer's
    iterations, so it is saved with the model and a resumed run continues it."""
    peak = train["optimizer"]["learning_rate"]
    if train["lr_schedule"] == "cosine":
        warmup_steps = round(train["lr_warmup_epochs"] * steps_per_epoch)
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=train["epochs"] * steps_per_epoch - warmup_steps,
            warmup_target=peak, warmup_steps=warmup_steps,
        )
    if train["lr_decay"] != 1:
        return keras.optimizers.schedules.ExponentialDecay(
            peak, decay_steps=steps_per_epoch, decay_rate=train["lr_decay"], staircase=True
        )
    return peak


def build_optimizer(train, steps_per_epoch):
    """A Keras optimizer from {name: ..., argument: value, ...} and the learning-rate schedule."""
    arguments = {key: value for key, value in train["optimizer"].items() if key != "name"}
    arguments["learning_rate"] = learning_rate(train, steps_per_epoch)
    return keras.optimizers.get({"class_name": train["optimizer"]["name"], "config": arguments})


def compile_model(model, train, steps_per_epoch):
    """The model compiled with train's label smoothing and optimizer; returns it."""
    model.compile(
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train["label_smoothing"]),
        optimizer=build_optimizer(train, steps_per_epoch),
        metrics=["accuracy"],
    )
    return model


def load_model(path):
    """keras.models.load_model with this module's layers registered, on whichever backend runs."""
    return keras.models.load_model(path)
