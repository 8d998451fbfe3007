"""MNIST-C's fifteen corruptions (Mu and Gilmer, 2019, "MNIST-C: A Robustness Benchmark for
Computer Vision"; google-research/mnist-c) at the severities the benchmark fixes, written for
batches on NumPy, SciPy and scikit-image.

Every corruption takes images in [0, 1] of shape (N, 28, 28) and a NumPy Generator and returns
images in [0, 1] of the same shape; the mnist_c stage stores them as uint8, as the published set
is. Where this differs from the benchmark's own code (docs/robustness.md):
- motion blur applies ImageMagick's MotionBlurImage kernel (21 one-sided Gaussian taps, sigma 3,
  each shifted by whole pixels along the angle) without ImageMagick; values may differ from it by
  rounding;
- random numbers come from a NumPy Generator a corruption, so the images are not the published
  files but draws from the same distributions.
"""

import numpy as np
from scipy.ndimage import gaussian_filter, shift
from skimage.feature import canny
from skimage.transform import AffineTransform, warp
from skimage.util import random_noise

SIDE = 28
CENTRE = (SIDE - 1) / 2  # the geometric corruptions keep this point where it is
ROWS, COLUMNS = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)  # each pixel's coordinates

SHOT_NOISE_PHOTONS = 3  # photons a pixel at full ink catches on average
IMPULSE_NOISE_AMOUNT = 0.17  # fraction of pixels set to black or white
GLASS_BLUR = {"sigma": 0.7, "max_delta": 1, "iterations": 2}
MOTION_BLUR = {"radius": 10, "sigma": 3, "max_angle": 45}  # angle in degrees, either way
SHEAR = 0.4  # radians, either way
SCALE = 0.7  # the digit shrinks to 70% about the centre
ROTATE = 0.4  # radians (23 degrees), either way
BRIGHTNESS = 0.5  # added to every pixel's value in HSV, which for gray is the pixel
TRANSLATE = 3  # pixels along each axis, either way
STRIPE_COLUMNS = (slice(0, 7), slice(21, SIDE))  # inverted
FOG = {"strength": 3.0, "decay": 1.4, "map_side": 256}
SPATTER = {"mean": 0.65, "spread": 0.3, "sigma": 1, "threshold": 0.65, "mud_sigma": 1.5,
           "mud_cutoff": 0.8, "mud_gray": 63 / 255}
LINE_REACH = 2.3  # a drawn line's intensity falls from 1 on it to 0 at this many rows away
ZIGZAG = {"first_column": 2, "last_column": 25, "tooth": 2.0, "max_slope_rows": 5}


def shot_noise(images, rng):
    """Poisson noise: each pixel counts photons, SHOT_NOISE_PHOTONS at full ink."""
    return np.clip(rng.poisson(images * SHOT_NOISE_PHOTONS) / SHOT_NOISE_PHOTONS, 0, 1)


def impulse_noise(images, rng):
    """Salt and pepper: IMPULSE_NOISE_AMOUNT of the pixels turned white or black, half each."""
    return random_noise(images, mode="s&p", amount=IMPULSE_NOISE_AMOUNT, rng=rng)


def blurred(images, sigma):
    """scikit-image's gaussian filter on each image (edge pixels repeated), the batch at once;
    sigma is one for both axes, or (rows, columns)."""
    rows, columns = np.broadcast_to(sigma, 2)
    return gaussian_filter(images, sigma=(0, rows, columns), mode="nearest", truncate=4.0)


def glass_blur(images, rng):
    """Blur, then swap pixels with neighbours up to max_delta away, then blur again.

    The swaps run over the inside of the image from the bottom right, each pixel with one chance
    in two, as the benchmark's loop does; its offsets come from [-max_delta, max_delta), so a pixel
    swaps only up or left. The blurred image is cut to whole levels of 255 between the blurs.

    Both blurs run down the columns only: the benchmark calls scikit-image's gaussian with
    multichannel=True on a 2-D image, which takes its second axis for colour channels and blurs
    the first alone (docs/robustness.md)."""
    sigma, delta = (GLASS_BLUR["sigma"], 0), GLASS_BLUR["max_delta"]
    levels = np.floor(blurred(images, sigma) * 255)
    every = np.arange(len(images))
    for _ in range(GLASS_BLUR["iterations"]):
        for row in range(SIDE - delta, delta, -1):
            for column in range(SIDE - delta, delta, -1):
                swapping = every[rng.random(len(images)) < 0.5]
                rows, columns = rng.integers(-delta, delta, size=(2, len(swapping)))
                rows, columns = rows + row, columns + column
                here = levels[swapping, row, column].copy()
                levels[swapping, row, column] = levels[swapping, rows, columns]
                levels[swapping, rows, columns] = here
    return np.clip(blurred(levels / 255, sigma), 0, 1)


def motion_blur(images, rng):
    """ImageMagick's motion blur: each pixel the weighted sum of the 2 * radius + 1 pixels behind
    it along a random angle, weights a one-sided Gaussian, steps rounded to whole pixels."""
    taps = 2 * MOTION_BLUR["radius"] + 1
    steps = np.arange(taps)
    weights = np.exp(-(steps**2) / (2 * MOTION_BLUR["sigma"] ** 2))
    weights /= weights.sum()
    angles = np.radians(rng.uniform(-MOTION_BLUR["max_angle"], MOTION_BLUR["max_angle"],
                                    len(images)))
    # ImageMagick rounds half down: ceil(x - 0.5).
    column_steps = np.ceil(steps[None, :] * np.cos(angles)[:, None] - 0.5).astype(int)
    row_steps = np.ceil(steps[None, :] * np.sin(angles)[:, None] - 0.5).astype(int)
    margin = taps - 1
    padded = np.pad(images, ((0, 0), (margin, margin), (margin, margin)), mode="edge")
    grid = np.arange(SIDE) + margin
    every = np.arange(len(images))[:, None, None]
    blurred_images = np.zeros_like(images, dtype=np.float64)
    for tap in range(taps):
        rows = grid[None, :, None] + row_steps[:, tap, None, None]
        columns = grid[None, None, :] + column_steps[:, tap, None, None]
        blurred_images += weights[tap] * padded[every, rows, columns]
    return np.clip(blurred_images, 0, 1)


def warped_about_centre(images, matrices):
    """Each image resampled (bilinear, black outside) at matrix @ (column, row) of every output
    pixel, with the matrix applied about CENTRE so that the centre stays put."""
    out = np.empty_like(images, dtype=np.float64)
    for index, (image, matrix) in enumerate(zip(images, matrices)):
        offset = CENTRE - matrix @ np.array([CENTRE, CENTRE])
        affine = np.vstack([np.column_stack([matrix, offset]), [0, 0, 1]])
        out[index] = warp(image, AffineTransform(matrix=affine), order=1, mode="constant")
    return np.clip(out, 0, 1)


def signs(rng, count):
    return rng.choice([-1.0, 1.0], size=count)


def shear(images, rng):
    """Sheared by SHEAR radians, leftward or rightward."""
    angles = SHEAR * signs(rng, len(images))
    matrices = [np.array([[1, -np.sin(angle)], [0, np.cos(angle)]]) for angle in angles]
    return warped_about_centre(images, matrices)


def scale(images, rng):
    """Shrunk to SCALE of its size about the centre (no randomness: the Generator is unused)."""
    return warped_about_centre(images, [np.eye(2) / SCALE] * len(images))


def rotate(images, rng):
    """Rotated by ROTATE radians, clockwise or anticlockwise."""
    angles = ROTATE * signs(rng, len(images))
    matrices = [np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
                for angle in angles]
    return warped_about_centre(images, matrices)


def brightness(images, rng):
    """Every pixel BRIGHTNESS brighter. The benchmark goes through HSV and back; for a gray pixel
    the value channel is the pixel itself and the round trip returns it, so this is the same."""
    return np.clip(images + BRIGHTNESS, 0, 1)


def translate(images, rng):
    """Moved TRANSLATE pixels along each axis, each direction drawn; what leaves is lost."""
    shifts = TRANSLATE * signs(rng, (len(images), 2))
    return np.stack([shift(image, (rows, columns), order=0, mode="constant")
                     for image, (columns, rows) in zip(images, shifts)])


def stripe(images, rng):
    """The left and right quarters inverted, black to white (no randomness)."""
    out = np.array(images, dtype=np.float64)
    for columns in STRIPE_COLUMNS:
        out[:, :, columns] = 1 - out[:, :, columns]
    return out


def plasma(count, rng, side, decay):
    """Diamond-square fractal clouds: `count` maps of side x side (a power of two), each scaled to
    [0, 1]. The random displacement at each level is +-amplitude**2, amplitude falling from 100 by
    `decay` a level, as in the benchmark's fog."""
    heights = np.zeros((count, side, side))
    step, amplitude = side, 100.0

    def displaced(total_of_four):
        return total_of_four / 4 + amplitude * rng.uniform(-amplitude, amplitude,
                                                           total_of_four.shape)

    while step >= 2:
        half = step // 2
        corners = heights[:, ::step, ::step]
        around = corners + np.roll(corners, -1, axis=1)
        around = around + np.roll(around, -1, axis=2)
        heights[:, half::step, half::step] = displaced(around)
        centres = heights[:, half::step, half::step]
        heights[:, ::step, half::step] = displaced(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2))
        heights[:, half::step, ::step] = displaced(
            centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1))
        step, amplitude = half, amplitude / decay
    heights -= heights.min(axis=(1, 2), keepdims=True)
    return heights / heights.max(axis=(1, 2), keepdims=True)


def fog(images, rng):
    """Fractal clouds added, then the image dimmed so its brightest ink keeps its share."""
    strength = FOG["strength"]
    out = np.empty_like(images, dtype=np.float64)
    chunk = 256  # maps of 256 x 256: a chunk's worth fits in about 130 MB
    for start in range(0, len(images), chunk):
        batch = images[start : start + chunk]
        clouds = plasma(len(batch), rng, FOG["map_side"], FOG["decay"])[:, :SIDE, :SIDE]
        brightest = batch.max(axis=(1, 2), keepdims=True)
        out[start : start + chunk] = (batch + strength * clouds) * brightest / (brightest + strength)
    return np.clip(out, 0, 1)


def spatter(images, rng):
    """Gray mud: smoothed noise above a threshold, blurred into blotches of gray MUD_GRAY that
    cover the ink where they are dense enough."""
    liquid = blurred(rng.normal(SPATTER["mean"], SPATTER["spread"], images.shape),
                     SPATTER["sigma"])
    mud = blurred((liquid > SPATTER["threshold"]).astype(np.float64), SPATTER["mud_sigma"])
    mud[mud < SPATTER["mud_cutoff"]] = 0
    return np.clip(images * (1 - mud) + SPATTER["mud_gray"] * mud, 0, 1)


def line_intensity(start, end):
    """A straight stroke from start = (column, row) to end: 1 + log(1 - d / LINE_REACH) at d rows
    above or below the line (clipped to [0, 1], so about 1.5 rows each side), only over the
    columns from floor(start column) up to, not including, ceil(end column)."""
    (first_column, first_row), (last_column, last_row) = start, end
    if last_column == first_column:
        return np.zeros((SIDE, SIDE))
    slope = (last_row - first_row) / (last_column - first_column)
    distance = np.minimum(np.abs(ROWS - (first_row + slope * (COLUMNS - first_column))),
                          LINE_REACH - 1e-10)
    stroke = np.clip(1 + np.log(1 - distance / LINE_REACH), 0, 1)
    outside = (COLUMNS < np.floor(first_column)) | (COLUMNS >= np.ceil(last_column))
    return np.where(outside, 0.0, stroke)


def dotted_line(images, rng):
    """A line from the left edge to the right at random rows, drawn in dashes of two columns: the
    columns whose pair index (column // 2) is odd."""
    out = np.empty_like(images, dtype=np.float64)
    dashes = (np.arange(SIDE) // 2) % 2 == 1
    for index, (first_row, last_row) in enumerate(rng.integers(0, SIDE - 1, (len(images), 2))):
        stroke = line_intensity((0, first_row), (SIDE - 1, last_row)) * dashes
        out[index] = np.clip(images[index] + stroke, 0, 1)
    return out


def zigzag_corners(length, tooth):
    """The corners of a zigzag along the x axis from 0 to `length`, as (x, y) columns: teeth of
    height +-tooth every 2 * tooth, then a last corner at `length`, its height as the
    benchmark places it."""
    teeth = int((length - tooth) // (2 * tooth)) + 1
    xs = [0.0, *((2 * np.arange(teeth) + 1) * tooth)]
    ys = [0.0, *(tooth * (-1.0) ** np.arange(teeth))]
    whole = 2 * tooth * (length // (2 * tooth))
    if length != whole:
        xs.append(length)
        ys.append(ys[-1] / (2 * (length - whole)))
    return np.array([xs, ys])


def zigzag(images, rng):
    """A zigzag stroke from column 2 to column 25, starting at a random row and rising or falling
    up to five rows by its end."""
    first, last = ZIGZAG["first_column"], ZIGZAG["last_column"]
    out = np.empty_like(images, dtype=np.float64)
    for index, image in enumerate(images):
        start_row = rng.integers(0, SIDE - 1)
        rise = rng.integers(-ZIGZAG["max_slope_rows"], ZIGZAG["max_slope_rows"])
        angle = np.arctan(rise / (last - first))
        corners = zigzag_corners((last - first) / np.cos(angle), ZIGZAG["tooth"])
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        columns, rows = turn @ corners + np.array([[first], [start_row]])
        strokes = sum(line_intensity((columns[i - 1], rows[i - 1]), (columns[i], rows[i]))
                      for i in range(1, len(columns)))
        out[index] = np.clip(image + strokes, 0, 1)
    return out


def canny_edges(images, rng):
    """Canny's edges (scikit-image's defaults: sigma 1) in white, all else black."""
    return np.stack([canny(image).astype(np.float64) for image in images])


# In the benchmark's order; a corruption's position also picks its random stream.
CORRUPTIONS = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}
