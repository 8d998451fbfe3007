"""Stage ood: digits that are not MNIST, drawn as the image files users hand to predict, for
evaluate's out-of-distribution score. Writes data/ood/: the images and labels.csv.

The source is the UCI handwritten digits that scikit-learn ships (1,797 digits, 8x8, written by
other people on other forms and scanned by another machine), so any machine builds the set
without a network. Each digit is scaled up from its 8x8 grid, which leaves thick, blurred strokes
with blocky curves, and drawn on a canvas of a random size under one condition: as a scan (clean,
blurred, faint, on noisy paper or cropped tight to the digit, dark on light or light on dark) or as a phone photo (ruled or
squared paper, a lamp's uneven light, coloured ink on tinted paper, the digit small and off
centre, JPEG, or all of these at once).

The source digits are split once, by a fixed rule, into a tuning part (the first TUNING_DIGITS of
scikit-learn's order) and a reporting part (the rest): they share no source digit. Thresholds and
recipe choices are made on the tuning part; evaluate reports the reporting part. Each part is
drawn `draws` times, each draw with its own sizes, polarities and conditions, so a score comes
with its spread. labels.csv names each file's part, draw, source digit, label and how it was drawn.
"""

import csv
import io
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw
from pydantic import Field
from scipy.ndimage import gaussian_filter

from stages.lib import params
from stages.lib.atomic import atomic_folder
from stages.lib.drawn import LABELS_FILE, NOT_DIGITS_DIR, OOD_DIR, PARTS

UCI_DIGITS = 1797  # the UCI digits scikit-learn ships
TUNING_DIGITS = 597  # the first third of them; the other 1,200 are the reporting part
SIZES = (28, 48, 96, 200)  # canvas side in pixels: thumbnails to phone crops
SCAN_CONDITIONS = ("none", "blur", "low_contrast", "noise", "tight")
PHOTO_CONDITIONS = ("ruled", "squared", "shadow", "colour", "off_centre", "jpeg", "photo")
CONDITIONS = SCAN_CONDITIONS + PHOTO_CONDITIONS
COLUMNS = ("file", "part", "draw", "source", "digit", "size", "polarity", "condition")
# Images that hold no single digit, which predict must refuse rather than read: blank paper under
# each condition's light and paper, two digits side by side, scribbles and blobs.
NOT_DIGIT_KINDS = ("blank", "pair", "scribble", "blob")
NOT_DIGIT_COLUMNS = ("file", "part", "draw", "kind", "size", "polarity", "condition")

TIGHT_INK = 0.1  # coverage a pixel needs to count as the digit's ink when cropping to it
# Reflectances in RGB: what a phone sees of paper, ruling and ink under white light.
PAPERS = ((0.93, 0.93, 0.91), (0.95, 0.92, 0.78), (0.86, 0.91, 0.95), (0.85, 0.85, 0.85))
RULINGS = ((0.55, 0.70, 0.90), (0.60, 0.60, 0.62), (0.90, 0.55, 0.55))
INKS = ((0.08, 0.08, 0.10), (0.10, 0.18, 0.55), (0.15, 0.15, 0.35))


class Params(params.Section):
    count: Optional[int] = Field(
        ge=1, le=TUNING_DIGITS,
        description="digits of each part in each draw (null: all, 597 tuning and 1,200 reporting)")
    draws: int = Field(ge=1, description="draws of each part, each with its own sizes, "
                                         "polarities and conditions")
    not_digits: int = Field(ge=0, description="images of each kind of not-digit (blank, pair, "
                                              "scribble, blob) in each part and draw")
    seed: int = params.Seed("which digits each draw takes, and how each is drawn")


def source_digits():
    """scikit-learn's 8x8 digits as (images in [0, 1], labels)."""
    from sklearn.datasets import load_digits  # a second or two: only when drawing

    digits = load_digits()
    return digits.images / 16, digits.target


def part_indices(part):
    """The source digits of a part: the fixed split."""
    return np.arange(TUNING_DIGITS) if part == "tuning" else np.arange(TUNING_DIGITS, UCI_DIGITS)


def placed(digit, size, box_share, rng):
    """The digit scaled up to a height of box_share x size (its width in proportion, within the
    canvas), at a random place on a size x size canvas of zeros: ink coverage in [0, 1]."""
    box = max(8, round(size * rng.uniform(*box_share)))
    aspect = digit.shape[1] / digit.shape[0]  # 1 for a digit; two side by side are wider
    box = min(box, round(size / aspect))
    width = min(size, round(box * aspect))
    ink = Image.fromarray(digit.astype(np.float32)).resize((width, box), Image.BICUBIC)
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = rng.integers(0, size - box + 1), rng.integers(0, size - width + 1)
    canvas[top : top + box, left : left + width] = np.clip(np.asarray(ink), 0, 1)
    return canvas, box


def scan(digit, size, dark_on_light, condition, rng):
    """One digit as a grayscale scan: clean, blurred, faint, on noisy paper, or cropped to the
    digit's own ink with a margin of at most 2% (as a user crops a photo to the digit)."""
    canvas, box = placed(digit, size, (0.55, 0.8), rng)
    if condition == "tight":
        rows, columns = np.nonzero(canvas > TIGHT_INK)
        margin = round(rng.uniform(0, 0.02) * box)
        canvas = np.pad(canvas, margin)[rows.min():rows.max() + 2 * margin + 1,
                                        columns.min():columns.max() + 2 * margin + 1]
    if condition == "blur":
        canvas = gaussian_filter(canvas, sigma=box * 0.06)
    contrast = rng.uniform(0.12, 0.25) if condition == "low_contrast" else rng.uniform(0.7, 0.95)
    paper = rng.uniform(0.75, 0.95) if dark_on_light else rng.uniform(0.0, 0.15)
    pixels = paper - contrast * canvas if dark_on_light else paper + contrast * canvas
    if condition == "noise":
        pixels = pixels + rng.normal(0, rng.uniform(0.05, 0.12), pixels.shape)
    return Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def ruled_page(size, box, squared, rng):
    """Lines of a ruled (or squared) page: about a digit's height apart (half that on squared
    paper), one to two pixels of a 200-pixel photo thick, at a random phase."""
    spacing = box * (rng.uniform(0.45, 0.6) if squared else rng.uniform(0.9, 1.2))
    width = max(0.6, size / 200 * rng.uniform(1.0, 2.0))
    along = (np.arange(size) - rng.uniform(0, spacing)) % spacing
    to_line = np.minimum(along, spacing - along)
    profile = np.clip(width / 2 + 0.5 - to_line, 0, 1)  # anti-aliased stripes
    lines = np.broadcast_to(profile[:, None], (size, size))
    if squared:
        lines = np.maximum(lines, profile[None, :])
    return lines


def lamp(size, rng):
    """A desk lamp's light over the page, as a multiplier of each pixel: brightest at a point on
    or near the page, falling linearly with the distance from it, by 40-65% at the length of the
    page's diagonal."""
    rows, columns = np.mgrid[0:size, 0:size] / size
    row, column = rng.uniform(-0.3, 1.3, size=2)
    distance = np.hypot(rows - row, columns - column) / np.sqrt(2)
    return 1 - rng.uniform(0.4, 0.65) * np.clip(distance, 0, 1)


def photo(digit, size, condition, rng):
    """One digit as a phone photo of dark ink on paper, RGB, under one condition or all of them
    ("photo"). Returns (image, JPEG quality to save it at, or None for PNG)."""
    everything = condition == "photo"
    small = everything or condition == "off_centre"
    canvas, box = placed(digit, size, (0.25, 0.4) if small else (0.55, 0.8), rng)
    coloured = everything or condition == "colour"
    paper = np.array(PAPERS[rng.integers(len(PAPERS))] if coloured else PAPERS[0])
    ink = np.array(INKS[rng.integers(len(INKS))] if coloured else INKS[0])
    reflectance = np.broadcast_to(paper, (size, size, 3)).copy()
    if everything or condition in ("ruled", "squared"):
        squared = condition == "squared" or (everything and rng.random() < 0.5)
        lines = ruled_page(size, box, squared, rng)[..., None]
        reflectance = reflectance * (1 - lines) + np.array(RULINGS[rng.integers(len(RULINGS))]) * lines
    reflectance = reflectance * (1 - canvas[..., None]) + ink * canvas[..., None]
    light = lamp(size, rng) if everything or condition == "shadow" else np.ones((size, size))
    pixels = reflectance * light[..., None]
    if everything:  # a phone's sensor noise
        pixels = pixels + rng.normal(0, 0.015, pixels.shape)
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    if everything or condition == "jpeg":
        return image, int(rng.integers(60, 86)) if everything else int(rng.integers(20, 50))
    return image, None


def draw(digit, size, dark_on_light, condition, rng):
    """One 8x8 digit drawn on a size x size canvas, as a file: (its bytes, its extension). A
    JPEG is encoded once, at its drawn quality."""
    image, quality = ((scan(digit, size, dark_on_light, condition, rng), None)
                      if condition in SCAN_CONDITIONS else photo(digit, size, condition, rng))
    encoded = io.BytesIO()
    if quality is None:
        image.save(encoded, "PNG")
        return encoded.getvalue(), "png"
    image.save(encoded, "JPEG", quality=quality)
    return encoded.getvalue(), "jpg"


def not_a_digit(kind, part_images, rng):
    """Ink coverage in [0, 1] of something that is not one digit, to be drawn as a digit is."""
    if kind == "blank":
        return np.zeros((8, 8))
    if kind == "pair":  # two of the part's digits, a quarter of a digit apart
        first, second = part_images[rng.integers(len(part_images), size=2)]
        return np.concatenate([first, np.zeros((8, 2)), second], axis=1)
    canvas = Image.new("L", (32, 32), 0)
    pen = ImageDraw.Draw(canvas)
    if kind == "scribble":  # a pen run back and forth over the box
        points = rng.uniform(3, 29, size=(int(rng.integers(8, 16)), 2))
        pen.line([tuple(point) for point in points], fill=255, width=int(rng.integers(2, 4)))
    else:  # a blob: one to three overlapping filled ellipses
        for _ in range(int(rng.integers(1, 4))):
            centre, radii = rng.uniform(11, 21, 2), rng.uniform(5, 11, 2)
            pen.ellipse([*(centre - radii), *(centre + radii)], fill=255)
    return np.asarray(canvas, dtype=np.float64) / 255


def drawn_at_random(coverage, number, conditions, rng):
    """(file bytes, extension, size, dark_on_light, condition) of one image, its condition the
    number-th of `conditions` in turn."""
    condition = conditions[number % len(conditions)]
    # Photos are of dark ink on paper, and small canvases make no photo.
    size = int(rng.choice(SIZES if condition in SCAN_CONDITIONS else SIZES[2:]))
    dark_on_light = condition not in SCAN_CONDITIONS or bool(rng.integers(2))
    return (*draw(coverage, size, dark_on_light, condition, rng), size, dark_on_light, condition)


def polarity(dark_on_light):
    return "dark_on_light" if dark_on_light else "light_on_dark"


def build(folder, count, draws, seed, not_digits):
    """Write `draws` draws of each part, `count` digits each (all when None), and labels.csv to
    `folder`, with `not_digits` of every kind of not-digit in its NOT_DIGITS_DIR; replacing it
    whole: a crash leaves the previous set or none, never part of one."""
    images, labels = source_digits()
    with atomic_folder(folder) as temporary:
        rows, not_digit_rows = [], []
        for part_number, part in enumerate(PARTS):
            for draw_number in range(1, draws + 1):
                stream = np.random.SeedSequence(seed, spawn_key=(part_number, draw_number))
                rng = np.random.default_rng(stream)
                chosen = rng.permutation(part_indices(part))[:count]
                for number, source in enumerate(chosen):
                    encoded, extension, size, dark_on_light, condition = drawn_at_random(
                        images[source], number, CONDITIONS, rng)
                    name = f"{part}-{draw_number}-{number:04d}.{extension}"
                    (temporary / name).write_bytes(encoded)
                    rows.append((name, part, draw_number, int(source), int(labels[source]), size,
                                 polarity(dark_on_light), condition))
                not_digit_rows += draw_not_digits(temporary / NOT_DIGITS_DIR, part, draw_number,
                                              not_digits,
                                              images[part_indices(part)], seed)
        with open(temporary / LABELS_FILE, "w", newline="") as file:
            csv.writer(file).writerows([COLUMNS, *rows])
        with open(temporary / NOT_DIGITS_DIR / LABELS_FILE, "w", newline="") as file:
            csv.writer(file).writerows([NOT_DIGIT_COLUMNS, *not_digit_rows])
    return len(rows)


def draw_not_digits(folder, part, draw_number, each, part_images, seed):
    """`each` images of every kind of NOT_DIGIT_KINDS into folder, from their own stream; returns
    their rows of the not-digits' labels.csv."""
    folder.mkdir(exist_ok=True)
    stream = np.random.SeedSequence(seed, spawn_key=(PARTS.index(part), draw_number, 1))
    rng = np.random.default_rng(stream)
    # A blank page cropped to its ink is no image at all.
    conditions = {kind: tuple(c for c in CONDITIONS if kind != "blank" or c != "tight")
                  for kind in NOT_DIGIT_KINDS}
    rows = []
    for kind in NOT_DIGIT_KINDS:
        for number in range(each):
            encoded, extension, size, dark_on_light, condition = drawn_at_random(
                not_a_digit(kind, part_images, rng), number, conditions[kind], rng)
            name = f"{part}-{draw_number}-{kind}-{number:03d}.{extension}"
            (folder / name).write_bytes(encoded)
            rows.append((name, part, draw_number, kind, size, polarity(dark_on_light), condition))
    return rows


def main():
    ood = params.load("ood", Params)
    drawn = build(OOD_DIR, ood["count"], ood["draws"], ood["seed"], ood["not_digits"])
    print(f"ood: {drawn} drawn digits in {OOD_DIR}, and what is not a digit in "
          f"{OOD_DIR / NOT_DIGITS_DIR}")


if __name__ == "__main__":
    main()
