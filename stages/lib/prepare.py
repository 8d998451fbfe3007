"""How a user's image becomes an MNIST digit: predict, serve and evaluate's out-of-distribution
score all prepare images here, so each reads a file the same way.

Each image is prepared the way MNIST's digits were made: the ink cropped to its bounding box,
scaled with anti-aliasing to fit a 20x20 box (aspect ratio kept), and placed in a 28x28 field
with its centre of mass at the centre. Dark ink on light paper or light on dark, grayscale, RGB
or RGBA with a transparent background, black or coloured ink on white or tinted paper, faint or
full contrast, clean or noisy paper, even or uneven light, plain, ruled or squared paper: all
become MNIST's full-white ink on black.

Every threshold here was chosen on the tuning part of the drawn digits (stages/ood.py,
benchmark/tune_prepare.py); evaluate reports the reporting part.
"""

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy.ndimage import (convolve, distance_transform_edt, grey_closing, grey_opening, label,
                           median_filter)
from skimage.morphology import skeletonize

INK_THRESHOLD = 0.25  # of the strongest ink: fainter pixels are paper texture or noise
MNIST_CENTRE = 14.0  # where MNIST's digits have their centre of mass (row and column, measured)
# paper_noise above which a median filter cleans the image first, chosen on the tuning part of the
# drawn digits (docs/handwriting.md): below the readings of its noisy-paper images. The filter
# also blunts fine strokes: clean paper skips it.
NOISY_PAPER = 0.025
SPECK = 0.05  # of the largest patch of ink: smaller ones on noisy paper are noise
INKIEST_SHARE = 0.02  # of the pixels, those farthest from the paper: their mean is the ink's colour
RULED_LINE_SPAN = 0.9  # of the image's side: a run of ink this long may be a ruled line
# Of the strongest ink: a long run fainter than this is a ruled line, a stronger one a stroke.
# Above every ruled line of the tuning part (docs/handwriting.md measures them), below a stroke,
# which is the strongest ink.
RULING_INK = 0.5
STRONGEST_INK = 0.999  # quantile of the ink map taken as the strongest ink (not its one maximum)
LIGHT_WINDOW = 1 / 3  # of the image's side: the light is measured over windows this wide
# Pixels an image is scaled down to before it is prepared: a digit that fills a tenth of a
# photo's width still spans over 100 of them.
WORK_PIXELS = 2_000_000
# What one digit's ink can be, chosen on the tuning parts of the drawn digits and not-digits
# (docs/handwriting.md): at most MAX_CROSSINGS crossings and branchings of its strokes, strokes
# at most MAX_STROKE of its size wide, one mark (several side by side are several digits).
MAX_CROSSINGS = 5
MAX_STROKE = 0.7
MARK_SHARE = 0.1  # of the ink: a smaller patch is part of a mark, not a mark of its own
MEASURE_SIDE = 40  # pixels: the ink's longer side when its strokes' crossings are counted


class ImageError(ValueError):
    """An input that cannot be turned into a digit."""


def colours(image):
    """The image's RGB in [0, 1], float32, at its full bit depth, and its alpha in [0, 1] (None
    when it has none)."""
    if image.mode.startswith("I") or image.mode == "F":  # Pillow's convert clips these at 255
        gray = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0, posinf=0, neginf=0)
        if image.mode.startswith("I;16"):
            full = 65535
        else:  # 32-bit and float images say nothing of their range: the first that holds them
            top = gray.max(initial=0)
            full = next((scale for scale in (1, 255, 65535) if top <= scale), top)
        gray = np.clip(gray / full, 0, 1)
        return np.repeat(gray[..., None], 3, axis=2), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255
    return (rgba[..., :3], rgba[..., 3]) if has_alpha else (rgba, None)


def ink_map(image):
    """Ink strength in [0, 1] for each pixel, whatever the file's colours, bit depth, background
    and light: the strongest ink becomes 1, so faint pencil or a low-contrast photo reaches
    MNIST's full white, and the lines of ruled or squared paper are left out."""
    pixels, alpha = colours(image)
    if alpha is not None and alpha.min() < 1:
        if np.median(border(alpha)) < 0.5:  # a transparent background: the ink is what is opaque
            return alpha
        # An opaque picture with some transparent pixels (cut corners, a border): those show
        # the paper, whatever colour they hold.
        opaque_paper = np.median(border(pixels)[border(alpha) >= 0.5], axis=0)
        pixels = pixels * alpha[..., None] + opaque_paper * (1 - alpha[..., None])
    paper = np.median(border(pixels), axis=0)
    if paper.mean() > 0.5:  # light paper: a lamp's uneven light is divided out
        pixels = pixels / illumination(pixels.mean(axis=2))[..., None]
        paper = np.median(border(pixels), axis=0)
    # Ink is how far a pixel is from the paper along the way to the ink's colour: dark or light,
    # black or blue, on white or tinted paper alike.
    away = paper - pixels
    distance = np.linalg.norm(away, axis=2)
    inkiest = away[distance >= np.quantile(distance, 1 - INKIEST_SHARE)].mean(axis=0)
    ink = np.clip(away @ (inkiest / max(np.linalg.norm(inkiest), 1e-6)), 0, None)
    ink = ink - ruled_lines(ink)
    return np.clip(ink / max(ink.max(), 1e-6), 0, 1)


def border(pixels):
    """The pixels along an image's four edges, where there is only paper."""
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def illumination(brightness):
    """The light falling on light paper, pixel by pixel: the brightness with dark strokes closed
    over (any stroke narrower than LIGHT_WINDOW of the image's shorter side)."""
    window = max(3, round(LIGHT_WINDOW * min(brightness.shape)))
    # Edges repeated, not mirrored: a mirror would fold a light falling towards an edge back up.
    return np.maximum(grey_closing(brightness, size=window, mode="nearest"), 1e-3)


def ruled_lines(ink):
    """The ink of ruled or squared paper's lines: runs of ink along RULED_LINE_SPAN of the image's
    width or height that are fainter than RULING_INK of the strongest ink. A pen's stroke spans a
    digit cropped to its own bounding box too, but it is the strongest ink there is: ruling is
    printed fainter than a pen writes."""
    height, width = ink.shape
    # No ink beyond the edges: a mirrored border would double a stroke that reaches it.
    across = grey_opening(ink, size=(1, max(2, round(RULED_LINE_SPAN * width))), mode="constant")
    down = grey_opening(ink, size=(max(2, round(RULED_LINE_SPAN * height)), 1), mode="constant")
    runs = np.maximum(across, down)
    return np.where(runs < RULING_INK * np.quantile(ink, STRONGEST_INK), runs, 0)


def paper_noise(ink):
    """The spread of the ink map along the image's border, where there is mostly paper: strokes
    that reach it at full strength (a digit cropped tight) are left out, grain is not."""
    edge = border(ink)
    paper = edge[edge < INK_THRESHOLD]
    return float(np.std(paper)) if paper.size else 0.0


def without_specks(ink):
    """ink with the specks the median filter left removed: patches of ink much smaller than the
    largest stroke, which would otherwise stretch the digit's bounding box across the paper."""
    patches, count = label(ink >= INK_THRESHOLD)
    if count == 0:
        return ink
    areas = np.bincount(patches.ravel())[1:]
    specks = np.isin(patches, 1 + np.flatnonzero(areas < SPECK * areas.max()))
    return np.where(specks, 0, ink)


def one_digit_measures(mask):
    """What tells one digit from other marks, measured on the pixels of ink (mask): the marks
    that stand side by side (each at least MARK_SHARE of the ink, their columns apart); the
    crossings and branchings of its strokes (on their skeleton, the ink scaled to
    MEASURE_SIDE pixels); and the strokes' width over the ink's height or width, whichever is
    longer (at the widest point: twice its distance from the paper)."""
    rows, columns = np.nonzero(mask)
    mask = mask[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    marks, _ = label(mask, structure=np.ones((3, 3)))
    areas = np.bincount(marks.ravel())[1:]
    spans = sorted(tuple(np.flatnonzero((marks == number).any(axis=0))[[0, -1]])
                   for number in 1 + np.flatnonzero(areas >= MARK_SHARE * areas.sum()))
    side_by_side = 1 + sum(later[0] > earlier[1] for earlier, later in zip(spans, spans[1:]))
    scale = MEASURE_SIDE / max(mask.shape)
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    scaled = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)
    small = np.asarray(scaled) >= 128
    skeleton = skeletonize(small)
    neighbours = convolve(skeleton.astype(np.int32), np.ones((3, 3), np.int32), mode="constant")
    crossings = label(skeleton & (neighbours >= 4), structure=np.ones((3, 3)))[1]
    # Paper all round: the crop's edges are the ink's own, and the distances run to the paper.
    stroke = 2 * distance_transform_edt(np.pad(mask, 1)).max() / max(mask.shape)
    return {"side_by_side": side_by_side, "crossings": crossings, "stroke": float(stroke)}


def not_one_digit(measures):
    """Why the ink of one_digit_measures is not one digit, or None when it may be."""
    if measures["side_by_side"] > 1:
        return f"{measures['side_by_side']} separate marks side by side"
    if measures["crossings"] > MAX_CROSSINGS:
        return "more crossing strokes than a digit has (a scribble?)"
    if measures["stroke"] > MAX_STROKE:
        return "strokes too thick for their size (a blob?)"
    return None


def cleaned_ink(image, denoise=True):
    """ink_map's ink; on noisy paper (grain, sensor noise, JPEG speckle) a 3x3 median filter runs
    first, the specks it leaves are removed and the ink is scaled to full white again.
    `denoise=False` skips this (benchmark/ood_denoise.py measures what it gains)."""
    ink = ink_map(image)
    if denoise and paper_noise(ink) > NOISY_PAPER:
        ink = without_specks(median_filter(ink, size=3))
        ink = ink / max(ink.max(), 1e-6)
    return ink


def mnist_like(image, denoise=True):
    """A 28x28 float32 array in [0, 1], light ink on black, centred by its centre of mass, from
    cleaned_ink's ink; an ImageError when there is none, or it is not one digit."""
    ink = cleaned_ink(image, denoise)
    rows, columns = np.nonzero(ink >= INK_THRESHOLD)
    if rows.size == 0:
        raise ImageError("no ink found (a blank image?)")
    if problem := not_one_digit(one_digit_measures(ink >= INK_THRESHOLD)):
        raise ImageError(f"no single digit found: {problem}")
    cropped = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    scale = 20 / max(cropped.shape)
    size = (max(1, round(cropped.shape[1] * scale)), max(1, round(cropped.shape[0] * scale)))
    digit = Image.fromarray((cropped * 255).astype(np.uint8)).resize(size, Image.LANCZOS)
    digit = np.asarray(digit, dtype=np.float32)
    # A fine pen on a large photo shrinks to faint grey: MNIST's strokes reach full white.
    digit = digit / max(digit.max(), 1e-6)

    total = digit.sum()
    row_centre = (digit.sum(axis=1) * np.arange(digit.shape[0])).sum() / total
    column_centre = (digit.sum(axis=0) * np.arange(digit.shape[1])).sum() / total
    top = int(np.clip(round(MNIST_CENTRE - row_centre), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(MNIST_CENTRE - column_centre), 0, 28 - digit.shape[1]))
    field = np.zeros((28, 28), dtype=np.float32)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return field


def working_size(image):
    """The image decoded and, when it has more than WORK_PIXELS, scaled down to that many (JPEG
    decodes at a fraction of its size directly): preparing costs time and memory in proportion
    to the pixels (benchmark/prepare_cost.py), and a digit needs far fewer than a camera has."""
    shrink = (WORK_PIXELS / (image.width * image.height)) ** 0.5
    if shrink >= 1:
        image.load()
        return image
    size = (max(1, round(image.width * shrink)), max(1, round(image.height * shrink)))
    image.draft(None, size)
    return image.resize(size, Image.LANCZOS, reducing_gap=2.0)


def load_digit(source, denoise=True, max_pixels=None):
    """The digit in an image file (a path, or a file object such as a server's upload body).
    An image of more than max_pixels is refused before it is decoded."""
    try:
        with Image.open(source) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ImageError(f"{image.width}x{image.height} pixels, more than "
                                 f"{max_pixels / 1e6:g} megapixels (send a smaller image)")
            return mnist_like(ImageOps.exif_transpose(working_size(image)), denoise)
    except UnidentifiedImageError:
        raise ImageError("not a readable image (no image format recognised)") from None
    except (OSError, Image.DecompressionBombError) as error:
        raise ImageError(f"not a readable image ({getattr(error, 'strerror', None) or error})") from None


def load_digit_or_none(source, denoise=True):
    """load_digit's digit, or None where predict refuses the file: for scoring a set of files,
    in which a refused digit counts as a wrong answer."""
    try:
        return load_digit(source, denoise)
    except ImageError:
        return None
