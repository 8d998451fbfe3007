"""mnist-predict on MNIST digits turned into the images people draw and photograph."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from stages.commands.predict import preprocessed_names
from stages.lib.model import model_inputs
from stages.lib.prepare import (INK_THRESHOLD, NOISY_PAPER, ImageError, ink_map, load_digit,
                                 mnist_like, paper_noise)
from tests.conftest import DIGIT_STROKES, ROOT, needs_real_mnist, real_mnist

DIGITS = 150


def user_like(digit, variant, rng):
    """One MNIST digit as a user's file: scaled up, off-centre, in one of five styles."""
    scale = int(rng.integers(7, 13))
    ink = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.BICUBIC)
    canvas_size = (28 * scale + int(rng.integers(40, 160)), 28 * scale + int(rng.integers(40, 160)))
    offset = (int(rng.integers(0, canvas_size[0] - 28 * scale)),
              int(rng.integers(0, canvas_size[1] - 28 * scale)))
    light_on_dark = Image.new("L", canvas_size, 0)
    light_on_dark.paste(ink, offset)
    dark_on_light = Image.eval(light_on_dark, lambda value: 255 - value)
    if variant == 0:
        return dark_on_light, "png"
    if variant == 1:
        return light_on_dark.convert("RGB"), "jpg"
    if variant == 2:
        drawing = Image.new("RGBA", canvas_size, (20, 20, 120, 0))  # blue ink, transparent paper
        drawing.putalpha(light_on_dark)
        return drawing, "png"
    if variant == 3:
        return dark_on_light.convert("RGB"), "jpg"
    return dark_on_light, "bmp"


def redraw(digits, folder):
    """Save each digit as a user's file, digit-NNN.<suffix>, cycling through the five styles."""
    rng = np.random.default_rng(0)
    width = max(3, len(str(len(digits) - 1)))
    for index, digit in enumerate(digits):
        image, suffix = user_like(digit, index % 5, rng)
        image.save(folder / f"digit-{index:0{width}d}.{suffix}")


def predict(*args, cwd):
    return subprocess.run([sys.executable, "-m", "stages.commands.predict", *map(str, args)], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True)


@pytest.mark.slow
@needs_real_mnist
def test_user_images_get_the_predictions_of_the_original_digits(trained, tmp_path):
    with np.load(trained / "data/prepared/test.npz") as test:
        digits, labels = test["images"][:DIGITS], test["labels"][:DIGITS]
    model = keras.models.load_model(trained / "data/model/model.keras")
    expected = model.predict(model_inputs(digits, labels)[0], verbose=0).argmax(axis=1)

    folder = tmp_path / "drawings"
    folder.mkdir()
    redraw(digits, folder)

    result = predict("--json", "--save-preprocessed", tmp_path / "seen", folder, cwd=trained)

    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)
    assert len(predictions) == DIGITS
    by_index = {int(p["file"].split("digit-")[1][:3]): p for p in predictions}
    agreement = np.mean([by_index[i]["digit"] == expected[i] for i in range(DIGITS)])
    assert agreement >= 0.97, f"agreement {agreement:.3f}"
    first = predictions[0]
    assert [t["digit"] for t in first["top3"]][0] == first["digit"]
    assert first["probability"] == first["top3"][0]["probability"] >= first["top3"][1]["probability"]
    assert first["preprocessed"] == str(tmp_path / "seen" / f"{Path(first['file']).stem}.png")
    seen = np.asarray(Image.open(first["preprocessed"]))
    assert seen.shape == (28, 28) and seen.max() > 200 and seen[0].max() == 0


@pytest.mark.slow
def test_bad_inputs_are_named_and_the_rest_classified(trained, tmp_path):
    Image.new("L", (200, 200), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    good = Image.new("L", (200, 200), 255)
    good.paste(0, (90, 40, 110, 160))  # a dark vertical stroke: a one
    good.save(tmp_path / "one.png")

    result = predict(tmp_path / "blank.png", tmp_path / "notes.png", tmp_path / "missing.png",
                     tmp_path / "one.png", cwd=trained)

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("predict:")]
    assert len(errors) == 3
    assert errors[0] == f"predict: {tmp_path / 'blank.png'}: no ink found (a blank image?)"
    assert errors[1].startswith(f"predict: {tmp_path / 'notes.png'}: not a readable image")
    assert errors[2].startswith(f"predict: {tmp_path / 'missing.png'}: not a readable image")
    assert result.stdout.startswith(f"{tmp_path / 'one.png'}: ")
    if real_mnist() is not None:  # a model of synthetic squares has no reason to see a one
        assert result.stdout.startswith(f"{tmp_path / 'one.png'}: 1 (")


def test_a_folder_without_images_is_named_and_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image here")
    (tmp_path / "model.keras").write_bytes(b"")  # never loaded: there is nothing to classify
    result = predict("--model", tmp_path / "model.keras", tmp_path / "empty", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == (f"predict: {tmp_path / 'empty'}: no image files in this "
                                     "folder (.bmp, .gif, .jpeg, .jpg, .png)")
    two = Image.new("L", (600, 300), 255)
    two.paste(drawn_digit(1, 14), (0, 0))
    two.paste(drawn_digit(7, 14), (300, 0))
    two.save(tmp_path / "seventeen.png")
    result = predict("--json", "--model", tmp_path / "model.keras", tmp_path / "empty",
                     tmp_path / "seventeen.png", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout) == [
        {"file": str(tmp_path / "empty"),
         "error": "no image files in this folder (.bmp, .gif, .jpeg, .jpg, .png)"},
        {"file": str(tmp_path / "seventeen.png"),
         "error": "no single digit found: 2 separate marks side by side"}]


def test_preprocessed_images_get_their_inputs_names_and_never_overwrite_each_other():
    files = [Path("a/IMG_1.jpg"), Path("b/IMG_1.jpg"), Path("b/img_1.png"), Path("c/seven.png"),
             Path("c/IMG_1-2.jpg")]
    assert preprocessed_names(files) == ["IMG_1.png", "IMG_1-2.png", "img_1-3.png", "seven.png",
                                         "IMG_1-2-2.png"]


def test_missing_model_is_one_line(tmp_path):
    Image.new("L", (20, 20), 0).save(tmp_path / "digit.png")
    result = predict("--model", tmp_path / "none.keras", tmp_path / "digit.png", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"predict: no model at {tmp_path / 'none.keras'} (run `dvc repro train` or pass --model)"


def pen_digit(stroke, paper=255, ink=0, size=240):
    """A seven drawn with a pen `stroke` pixels wide, as a grayscale photo of paper."""
    image = Image.new("L", (size, size), paper)
    ImageDraw.Draw(image).line([(60, 50), (180, 50), (110, 200)], fill=ink, width=stroke,
                               joint="curve")
    return image


def centre_of_mass(digit):
    rows, columns = np.mgrid[:28, :28]
    return (digit * rows).sum() / digit.sum(), (digit * columns).sum() / digit.sum()


def assert_mnist_like(digit):
    """Full-white ink on black, in a 20x20 box, centred by mass as MNIST's digits are."""
    rows, columns = np.nonzero(digit > 0.05)
    assert digit.max() == pytest.approx(1.0)
    assert max(np.ptp(rows), np.ptp(columns)) + 1 <= 20 + 1
    np.testing.assert_allclose(centre_of_mass(digit), 14.0, atol=0.6)


def test_low_contrast_reaches_full_white():
    clean = mnist_like(pen_digit(14))
    faint = mnist_like(pen_digit(14, paper=170, ink=140))  # pencil in poor light: 30 grey levels
    assert_mnist_like(faint)
    assert np.abs(faint - clean).mean() < 0.01


def test_noisy_paper_is_cleaned_by_the_median_filter():
    clean = mnist_like(pen_digit(14))
    rng = np.random.default_rng(0)
    pixels = np.asarray(pen_digit(14, paper=200, ink=60), dtype=np.float32)
    noisy = Image.fromarray(np.clip(pixels + rng.normal(0, 30, pixels.shape), 0, 255).astype(np.uint8))
    assert paper_noise(ink_map(noisy)) > NOISY_PAPER > paper_noise(ink_map(pen_digit(14)))
    denoised, raw = mnist_like(noisy), mnist_like(noisy, denoise=False)
    assert_mnist_like(denoised)
    assert np.abs(denoised - clean).mean() < 0.05
    assert np.abs(raw - clean).mean() > 2 * np.abs(denoised - clean).mean()


def test_blurred_photo_keeps_its_shape():
    clean = mnist_like(pen_digit(14))
    blurred = mnist_like(pen_digit(14).filter(ImageFilter.GaussianBlur(6)))
    assert_mnist_like(blurred)
    assert np.corrcoef(blurred.ravel(), clean.ravel())[0, 1] > 0.85


@pytest.mark.parametrize("stroke", [3, 40])
def test_thin_and_thick_pens_fill_mnists_box_in_full_white(stroke):
    digit = mnist_like(pen_digit(stroke))
    assert_mnist_like(digit)
    # A 3-pixel pen is a tenth of a pixel once scaled: without rescaling it would stay faint grey.
    assert (digit > 0.5).sum() >= 20
    assert np.corrcoef(digit.ravel(), mnist_like(pen_digit(14)).ravel())[0, 1] > 0.6


# Trains a model with batch normalization on the backend named, saves it, and prints its answers
# to the images named, through predict's own preparation and classify, on that backend.
TRAIN_AND_ANSWER = """
import json, sys
from stages.lib import backend
backend.use(sys.argv[1])
import keras
from benchmark.recipes import recipe_params
from stages.commands.predict import classify
from stages.lib.model import build_model, compile_model, model_inputs
from stages.lib.prepare import load_digit
from tests.conftest import synthetic_digits

keras.utils.set_random_seed(0)
train = recipe_params("strong", ["train.precision=float32"])["train"]
images, labels = model_inputs(*synthetic_digits(640, seed=1))
model = compile_model(build_model(train), train, steps_per_epoch=10)
model.fit(images, labels, epochs=3, batch_size=64, verbose=0)
model.save(sys.argv[2])
print(json.dumps(classify(model, [load_digit(path) for path in sys.argv[3:]])))
"""


@pytest.mark.slow
def test_a_model_from_either_backend_predicts_the_same_on_the_other(tmp_path, jax_env):
    """Batch normalization included; from a folder without params.yaml; nothing on stderr."""
    rng = np.random.default_rng(0)
    for index in range(12):  # pen strokes that predict's preparation keeps apart
        image = Image.new("L", (80, 80), 255)
        ImageDraw.Draw(image).line([tuple(point) for point in rng.integers(5, 75, (4, 2))],
                                   fill=0, width=6)
        image.save(tmp_path / f"strokes-{index:02d}.png")
    images = sorted(tmp_path.glob("*.png"))
    environments = {
        "tensorflow": {**os.environ, "PYTHONPATH": str(ROOT)},
        "jax": {**os.environ, **jax_env, "PYTHONPATH": f"{jax_env['PYTHONPATH']}{os.pathsep}{ROOT}"},
    }
    for trained_on, env in environments.items():
        model = tmp_path / f"{trained_on}.keras"
        trained = subprocess.run([sys.executable, "-c", TRAIN_AND_ANSWER, trained_on, model, *images],
                                 cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        native = json.loads(trained.stdout.splitlines()[-1])
        other = next(name for name in environments if name != trained_on)
        result = subprocess.run(
            [sys.executable, "-m", "stages.commands.predict", "--json", "--model", model,
             "--backend", other, *images],
            cwd=tmp_path, env=environments[other], capture_output=True, text=True)
        assert result.returncode == 0 and result.stderr == "", result.stderr

        for mine, theirs in zip(native, json.loads(result.stdout), strict=True):
            near_tie = mine["top3"][0]["probability"] - mine["top3"][1]["probability"] < 4e-3
            assert mine["digit"] == theirs["digit"] or near_tie
            assert mine["probability"] == pytest.approx(theirs["probability"], abs=2e-3)
        assert len({answer["probability"] for answer in native}) > 6, "the same answer for all"


def photographed(image, paper=(236, 232, 214), ink=(30, 45, 140), light=None, ruled=None):
    """A grayscale pen drawing as a colour photo: the ink's darkness painted in `ink` on `paper`,
    lines of a ruled page (None, "ruled" or "squared") under it, times a lamp's `light` field."""
    darkness = 1 - np.asarray(image, dtype=np.float32)[..., None] / 255
    size = darkness.shape[0]
    page = np.broadcast_to(np.array(paper, dtype=np.float32), darkness.shape[:2] + (3,)).copy()
    if ruled:
        line_colour = np.array((140, 180, 230), dtype=np.float32)
        page[15::30] = line_colour
        if ruled == "squared":
            page[:, 15::30] = line_colour
    pixels = page * (1 - darkness) + np.array(ink, dtype=np.float32) * darkness
    if light is not None:
        pixels = pixels * light(*np.mgrid[0:size, 0:size] / size)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def similar_to_clean(image, correlation=0.9):
    clean = mnist_like(pen_digit(14))
    digit = mnist_like(image)
    assert_mnist_like(digit)
    assert np.corrcoef(digit.ravel(), clean.ravel())[0, 1] > correlation


@pytest.mark.parametrize("ruled", ["ruled", "squared"])
def test_ruled_and_squared_paper_lose_their_lines(ruled):
    photo = photographed(pen_digit(14), ruled=ruled)
    ink = ink_map(photo)
    assert ink[15, :40].max() < 0.05 and ink[:40, 15].max() < 0.05  # a line away from the digit
    similar_to_clean(photo)


def test_a_lamps_uneven_light_is_flattened():
    def lamp(rows, columns):  # bright at the top left, 40% of that at the far corner
        return 1 - 0.6 * np.clip(np.hypot(rows, columns) / np.sqrt(2), 0, 1)

    photo = photographed(pen_digit(14), paper=(235, 235, 235), ink=(20, 20, 20), light=lamp)
    # The dark corner is paper, not ink (it would be 0.65 of the ink's strength unflattened).
    assert ink_map(photo)[-30:, -30:].max() < INK_THRESHOLD
    similar_to_clean(photo)


def test_coloured_ink_on_tinted_paper_is_found_by_its_colour():
    # Red ink on grey-green paper: 2 levels apart in gray, lost in a sensor's noise there; far
    # apart in colour.
    photo = photographed(pen_digit(14), paper=(100, 115, 100), ink=(230, 60, 60))
    pixels = np.asarray(photo, dtype=np.float32)
    pixels += np.random.default_rng(0).normal(0, 3, pixels.shape)
    similar_to_clean(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), correlation=0.95)


def test_a_small_digit_off_centre_is_found_among_margins():
    page = Image.new("L", (700, 700), 250)
    page.paste(pen_digit(14).resize((120, 120), Image.LANCZOS), (520, 40))
    similar_to_clean(photographed(page, paper=(250, 250, 250), ink=(10, 10, 10)))


def test_jpeg_artefacts_leave_the_digit():
    encoded = io.BytesIO()
    photographed(pen_digit(14), ruled="ruled").save(encoded, "JPEG", quality=25)
    similar_to_clean(Image.open(encoded))


def drawn_digit(digit, width, side=300):
    """A digit of DIGIT_STROKES drawn with a pen `width` pixels wide, dark on white paper."""
    image = Image.new("L", (side, side), 255)
    pen = ImageDraw.Draw(image)
    for stroke in DIGIT_STROKES[digit]:
        pen.line([(x * side, y * side) for x, y in stroke], fill=0, width=width, joint="curve")
    return image


@pytest.mark.parametrize("margin", [0, 0.02])
@pytest.mark.parametrize("width", [1, 3, 8, 20, 40])
def test_a_digit_cropped_to_its_own_ink_keeps_every_stroke(width, margin):
    for digit in DIGIT_STROKES:
        image = drawn_digit(digit, width)
        left, top, right, bottom = ImageOps.invert(image).getbbox()
        pad = round(margin * max(right - left, bottom - top))
        cropped = image.crop((left - pad, top - pad, right + pad, bottom + pad))
        drawn = np.asarray(cropped) < 128
        kept = ink_map(cropped)[drawn] >= INK_THRESHOLD
        assert kept.mean() > 0.99, f"{digit} drawn {width} wide lost {1 - kept.mean():.1%} of its ink"
        assert mnist_like(cropped).max() == 1  # and read as one digit


def sixteen_bit_scan(paper, ink):
    values = np.full((200, 200), paper, np.uint16)
    values[40:160, 95:107] = ink  # a one
    values[40:52, 75:107] = ink
    encoded = io.BytesIO()
    Image.fromarray(values).save(encoded, "PNG")
    return encoded


@pytest.mark.parametrize("paper, ink", [(52000, 12000), (60000, 58000), (3000, 40000)])
def test_a_16_bit_scan_is_read_at_its_full_depth(paper, ink):
    encoded = sixteen_bit_scan(paper, ink)
    assert Image.open(encoded).mode == "I;16"
    eight_bit = np.round(np.asarray(Image.open(sixteen_bit_scan(paper, ink)), np.float64)
                         * 255 / 65535).astype(np.uint8)
    assert np.array_equal(load_digit(encoded), mnist_like(Image.fromarray(eight_bit)))


def test_transparent_corners_of_an_opaque_photo_are_paper_not_ink():
    photo = pen_digit(14).convert("RGBA")
    corners = Image.new("L", photo.size, 255)
    ImageDraw.Draw(corners).rectangle((0, 0, 3, 3), fill=0)
    for turn in range(4):  # each corner cut out, its colour black
        photo.paste((0, 0, 0, 0), mask=ImageOps.invert(corners.rotate(90 * turn)))
    digit = mnist_like(photo)
    clean = mnist_like(pen_digit(14))
    assert np.corrcoef(digit.ravel(), clean.ravel())[0, 1] > 0.99


def test_ink_on_a_transparent_background_is_what_is_opaque():
    drawing = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    drawing.putalpha(ImageOps.invert(pen_digit(14)))  # black ink, transparent paper
    clean = mnist_like(pen_digit(14))
    assert np.corrcoef(mnist_like(drawing).ravel(), clean.ravel())[0, 1] > 0.99


# Every mode Pillow makes, each with a format that stores it (Pillow reopens some in another).
MODES = {"1": "PNG", "L": "PNG", "P": "PNG", "RGB": "PNG", "RGBA": "PNG", "LA": "PNG",
         "I;16": "PNG", "I": "TIFF", "F": "TIFF", "CMYK": "JPEG", "YCbCr": "TIFF", "PA": "TIFF",
         "I;16B": "TIFF", "LAB": "TIFF"}


@st.composite
def any_image(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    image = Image.new(mode, (width, height))
    bands = len(image.getbands())
    dtype = {"I;16": np.uint16, "I;16B": ">u2", "I": np.int32, "F": np.float32}.get(mode, np.uint8)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    content = draw(st.sampled_from(["constant", "noise", "stroke"]))
    top = {"I;16": 65535, "I;16B": 65535, "I": 2**31 - 1, "F": 1e6}.get(mode, 255)
    shape = (height, width) if bands == 1 else (height, width, bands)
    if content == "constant":
        values = np.full(shape, draw(st.integers(0, 255)) if top == 255 else rng.uniform(0, top))
    else:
        values = rng.uniform(0, top, shape)
        if content == "stroke":
            values = np.full(shape, top * 0.9)
            values[height // 4:height - height // 4, width // 3:max(width // 3 + 1, width // 2)] = 0
    if mode == "1":
        image = Image.fromarray(values[..., 0] > 127 if values.ndim == 3 else values > 127)
    elif mode in ("P", "PA"):
        image = Image.fromarray(values.astype(np.uint8)[..., 0] if values.ndim == 3
                                else values.astype(np.uint8), "L").convert(mode)
    else:
        image = Image.frombytes(mode, (width, height), values.astype(dtype).tobytes())
    if draw(st.booleans()) and mode == "P":
        image.info["transparency"] = draw(st.integers(0, 255))
    encoded = io.BytesIO()
    image.save(encoded, MODES[mode])
    encoded.seek(0)
    return encoded


@settings(max_examples=250, deadline=None)
@given(any_image())
def test_any_image_gives_a_digit_or_an_image_error(encoded):
    try:
        digit = load_digit(encoded)
    except ImageError:
        return
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert np.isfinite(digit).all() and digit.min() >= 0 and digit.max() <= 1


def refusal(image):
    with pytest.raises(ImageError) as refused:
        mnist_like(image)
    return str(refused.value)


def test_two_digits_side_by_side_are_no_single_digit():
    pair = Image.new("L", (600, 300), 255)
    pair.paste(drawn_digit(1, 14), (0, 0))
    pair.paste(drawn_digit(2, 14), (300, 0))
    assert refusal(pair) == "no single digit found: 2 separate marks side by side"
    # A digit made of separate strokes one above the other is still one: a five's flag.
    five = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(five).line([(80, 40), (220, 40)], fill=0, width=14)
    ImageDraw.Draw(five).arc((70, 110, 230, 270), 200, 140, fill=0, width=14)
    mnist_like(five)


def test_a_scribble_and_a_blob_are_no_single_digit():
    scribble = Image.new("L", (300, 300), 255)
    points = np.random.default_rng(0).uniform(20, 280, (16, 2))
    ImageDraw.Draw(scribble).line([tuple(point) for point in points], fill=0, width=6)
    assert refusal(scribble) == ("no single digit found: more crossing strokes than a digit has "
                                 "(a scribble?)")
    blob = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(blob).ellipse((60, 80, 240, 230), fill=0)
    assert refusal(blob) == "no single digit found: strokes too thick for their size (a blob?)"
