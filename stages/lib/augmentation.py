"""The training-time augmentation layers: RandomAffine (rotate, shift, zoom in one resampling),
RandomInk (pens, scanners and cameras) and RandomPaper (paper, light and sensors), built from
params.yaml's train.augment. Import it
after stages.lib.backend.use(): it imports Keras. Registered under the same names whatever the
backend, so a model trained on either loads on the other."""

import math

import keras


class SeededLayer(keras.layers.Layer):
    """A training-time random layer: its own seed stream, which stages.lib.training restarts
    every epoch from the run's seed and the layer's place, and float32 whatever the precision
    policy, since pixel work in bfloat16 loses grey levels."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def uniform(self, shape, low=0.0, high=1.0):
        return keras.random.uniform(shape, low, high, seed=self.seed_generator)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="mnist_dvc")
class RandomAffine(SeededLayer):
    """Rotates, shifts and zooms each training image by random amounts in one resampling.

    Keras' RandomRotation, RandomTranslation and RandomZoom resample one after another, and each
    bilinear pass blurs the digit, which test digits are not (benchmark/augmentation_blur.py
    measures how much). So the three draws make one matrix and ops.image.affine_transform
    resamples once. Training only; empty space is black, as around a handwritten digit.
    """

    def __init__(self, rotation=0.0, shift=0.0, zoom=0.0, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rotation, self.shift, self.zoom = rotation, shift, zoom

    def call(self, images, training=None):
        if not training:
            return images
        return self.transform(images, **self.draw(images))

    def draw(self, images):
        """Per image: angle (radians), scale, shift_x and shift_y (pixels), each uniform within
        the layer's limits."""
        height, width = images.shape[1:3]

        def uniform(limit):
            return self.uniform((keras.ops.shape(images)[0],), -limit, limit)

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
                "zoom": self.zoom}


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
class RandomInk(SeededLayer):
    """Draws each training digit as another pen, scanner or camera would: thicker or thinner
    strokes, an elastic wobble and blur, each by a random amount per image, then its ink brought
    back to full white, as predict prepares a user's digit (stages/lib/prepare.py): the model is
    trained on what predict feeds it.

    thickness (pixels, at most 1) blends the digit towards its 3x3 grey dilation or erosion;
    elastic (pixels) is the largest displacement of a smooth random field (Simard et al. 2003,
    smoothed by a Gaussian of ELASTIC_SMOOTHING pixels; Keras' own elastic_transform draws the
    x and y fields from one seed under TensorFlow, so they are equal); blur (pixels) is the
    largest Gaussian sigma, reached by blending towards the digit blurred by it. Training only.
    """

    ELASTIC_SMOOTHING = 4.0

    def __init__(self, thickness=0.0, elastic=0.0, blur=0.0, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.thickness, self.elastic, self.blur = thickness, elastic, blur

    def call(self, images, training=None):
        if not training:
            return images
        ops = keras.ops
        per_image = (ops.shape(images)[0], 1, 1, 1)
        if self.thickness:
            amount = self.uniform(per_image, -self.thickness, self.thickness)
            thicker = ops.max_pool(images, 3, strides=1, padding="same")
            thinner = -ops.max_pool(-images, 3, strides=1, padding="same")
            target = ops.where(amount > 0, thicker, thinner)
            images = images + ops.abs(amount) * (target - images)
        if self.elastic:
            images = self.wobble(images)
        if self.blur:
            blurred = gaussian_blurred(images, self.blur)
            images = images + self.uniform(per_image) * (blurred - images)
        strongest = ops.max(images, axis=(1, 2, 3), keepdims=True)
        return images / ops.maximum(strongest, 1e-6)

    def field(self, batch, height, width):
        """Per image, a smooth random displacement (rows, columns) in pixels, scaled so that its
        longest vector is `elastic` pixels long."""
        ops = keras.ops
        noise = self.uniform((batch, height, width, 2), -1, 1)
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
                "blur": self.blur}


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


@keras.saving.register_keras_serializable(package="mnist_dvc")
class RandomPaper(SeededLayer):
    """Puts each training digit on the paper, under the light and through the sensor of a
    user's photo or scan. Each change happens to an image with probability 1/2, by an amount
    drawn per image, so that every batch still holds clean digits:

    - erase: a rectangle of ERASE_SHARE (or `erase`, if smaller) up to this share of the image painted one random grey from
      ERASE_GREY to white (glare, a sticker, a fold: Random Erasing, Zhong et al. 2017), its sides
      in a ratio within 1:3 and 3:1; never black, which would cut strokes out of the digit
      unseen, so that the digit left would look like another;
    - light: grey paper up to this level, its light uneven: darker towards a random side by a
      random fraction of the level (a lamp to one side), screened under the ink;
    - noise: Gaussian grain of up to this standard deviation, clipped to [0, 1], then up to this
      share of the pixels turned black or white (dead pixels, dust).

    Generic by design: nothing here follows a benchmark's corruption, so MNIST-C stays a test of
    what the model never saw. Training only.
    """

    ERASE_SHARE = 0.02  # the smallest rectangle's share of the image
    ERASE_GREY = 0.25

    def __init__(self, light=0.0, noise=0.0, erase=0.0, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.light, self.noise, self.erase = light, noise, erase

    def chance(self, shape):
        """True with probability 1/2, drawn for each element of `shape`."""
        return self.uniform(shape) < 0.5

    def call(self, images, training=None):
        if not training:
            return images
        ops = keras.ops
        per_image = (ops.shape(images)[0], 1, 1, 1)
        rows, columns = pixel_grid(images)
        if self.erase:
            rectangle, grey = self.rectangle(per_image, rows, columns)
            images = ops.where(rectangle & self.chance(per_image), grey, images)
        if self.light:
            paper = self.paper(per_image, rows, columns)
            images = ops.where(self.chance(per_image), 1 - (1 - images) * (1 - paper), images)
        if self.noise:
            images = ops.where(self.chance(per_image), self.noisy(images, per_image), images)
        return images

    def noisy(self, images, per_image):
        ops = keras.ops
        grain = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        images = ops.clip(images + self.uniform(per_image, 0, self.noise) * grain, 0, 1)
        share = self.uniform(per_image, 0, self.noise)
        draw = self.uniform(ops.shape(images))
        return ops.where(draw < share / 2, 1.0, ops.where(draw < share, 0.0, images))

    def rectangle(self, per_image, rows, columns):
        """Per image, where the erased rectangle lies and its grey."""
        ops = keras.ops
        height, width = rows.shape[1], columns.shape[2]
        smallest = min(self.ERASE_SHARE, self.erase)
        area = self.uniform(per_image, smallest, self.erase) * height * width
        ratio = ops.exp(self.uniform(per_image, -math.log(3), math.log(3)))
        half_height = ops.sqrt(area * ratio) / 2
        half_width = ops.sqrt(area / ratio) / 2
        centre_row, centre_column = self.uniform(per_image, 0, height), self.uniform(per_image, 0, width)
        inside = ((ops.abs(rows - centre_row) <= half_height)
                  & (ops.abs(columns - centre_column) <= half_width))
        return inside, self.uniform(per_image, self.ERASE_GREY, 1)

    def paper(self, per_image, rows, columns):
        """Per image, the paper's grey at each pixel: a level up to `light`, falling by up to all
        of it across the image towards a random side."""
        ops = keras.ops
        height, width = rows.shape[1], columns.shape[2]
        angle = self.uniform(per_image, 0, 2 * math.pi)
        across = ((rows - (height - 1) / 2) * ops.sin(angle)
                  + (columns - (width - 1) / 2) * ops.cos(angle)) / max(height, width)
        level = self.uniform(per_image, 0, self.light)
        return level * (1 - self.uniform(per_image) * ops.clip(across + 0.5, 0, 1))

    def get_config(self):
        return {**super().get_config(), "light": self.light, "noise": self.noise,
                "erase": self.erase}


def pixel_grid(images):
    """Each pixel's row and column, shaped (1, height, width, 1) to broadcast over a batch."""
    height, width = images.shape[1], images.shape[2]
    rows = keras.ops.reshape(keras.ops.arange(height, dtype="float32"), (1, height, 1, 1))
    columns = keras.ops.reshape(keras.ops.arange(width, dtype="float32"), (1, 1, width, 1))
    return rows + 0 * columns, columns + 0 * rows


AFFINE_KEYS = ("rotation", "shift", "zoom")
INK_KEYS = ("thickness", "elastic", "blur")
PAPER_KEYS = ("light", "noise", "erase")


def augmentation_layers(augment):
    """RandomAffine when any of rotation (degrees), shift and zoom (fractions) is on, then
    RandomInk when any of its changes is, then RandomPaper when any of its changes is: a recipe
    without them builds the model it always did."""
    layers = []
    for layer, keys in ((RandomAffine, AFFINE_KEYS), (RandomInk, INK_KEYS),
                        (RandomPaper, PAPER_KEYS)):
        if any(augment[key] for key in keys):
            layers.append(layer(*(augment[key] for key in keys)))
    return layers
