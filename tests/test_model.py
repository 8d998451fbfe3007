import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import ndimage

from stages.lib import model as model_module
from stages.lib.augmentation import (RandomAffine, RandomInk, RandomPaper, affine_rows, bilinear,
                                     gaussian_blurred)
from stages.lib.batch_norm import FusedBatchNormalization
from stages.lib.model import InkNormalization, build_model, compile_model, load_model
from stages.lib.optimizer import build_optimizer
from stages.lib.prepare import mnist_like
from tests.conftest import project_params, recipe_params


def test_default_model_is_the_seed_cnn():
    model = build_model(project_params()["train"])

    assert model.count_params() == 872_714
    layers = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers]
    assert layers == [
        ("Conv2D", (24, 24, 32)),
        ("Conv2D", (20, 20, 64)),
        ("MaxPooling2D", (10, 10, 64)),
        ("Flatten", (6400,)),
        ("Dropout", (6400,)),
        ("Dense", (128,)),
        ("Dropout", (128,)),
        ("Dense", (10,)),
    ]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert model.layers[-1].activation is keras.activations.softmax


def test_default_optimizer_is_keras_2_adadelta():
    optimizer = build_optimizer(project_params()["train"], steps_per_epoch=600)
    assert isinstance(optimizer, keras.optimizers.Adadelta)
    assert float(optimizer.learning_rate) == 1.0
    assert (optimizer.rho, optimizer.epsilon) == (0.95, 1e-7)


def test_readme_strong_recipe_builds_the_strong_cnn(tmp_path):
    train = recipe_params("strong")["train"]
    model = build_model(train)

    assert model.count_params() == 306_842
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[0] == "RandomAffine"
    assert kinds.count("FusedBatchNormalization") == 7 and kinds.count("Conv2D") == 7
    assert "MaxPooling2D" not in kinds  # stride-2 convolutions instead
    strided = [layer for layer in model.layers if getattr(layer, "strides", None) == (2, 2)]
    assert [layer.output.shape[1:] for layer in strided] == [(12, 12, 32), (4, 4, 64)]


def test_handwriting_line_builds_the_strong_cnn_with_ink_augmentation(tmp_path):
    layers = build_model(recipe_params("handwriting")["train"]).layers
    strong = build_model(recipe_params("strong")["train"]).layers
    assert [type(layer).__name__ for layer in layers] == \
        ["RandomAffine", "RandomInk", *[type(layer).__name__ for layer in strong[1:]]]
    ink = layers[1]
    assert (ink.thickness, ink.elastic, ink.blur) == (1.0, 1.5, 1.0)


def test_photo_recipe_puts_the_handwriting_digits_on_paper_and_normalizes_their_ink():
    layers = build_model(recipe_params("photo")["train"]).layers
    handwriting = build_model(recipe_params("handwriting")["train"]).layers
    assert [type(layer).__name__ for layer in layers] == [
        "RandomAffine", "RandomInk", "RandomPaper", "InkNormalization",
        *[type(layer).__name__ for layer in handwriting[2:]]]
    paper = layers[2]
    assert (paper.light, paper.noise, paper.erase) == (0.6, 0.15, 0.25)


def test_batch_norm_synchronizes_tensorflow_replicas_only():
    """An empty mapping of options still means batch normalization (one device, or JAX)."""
    train = recipe_params("strong")["train"]
    assert model_module.batch_norm_arguments(train) == {}
    assert model_module.batch_norm_arguments({**train, "distribute": "mirrored"}) == {
        "synchronized": True}
    kinds = [type(layer).__name__ for layer in build_model(train).layers]
    assert kinds.count("FusedBatchNormalization") == 7 and kinds.count("Conv2D") == 7
    assert isinstance(build_optimizer(train, steps_per_epoch=600), keras.optimizers.Adam)


def test_augmentation_acts_in_training_only(tmp_path):
    model = build_model(recipe_params("strong")["train"])
    augmentation = model.layers[0]
    digits = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")

    assert np.array_equal(augmentation(digits, training=False), digits)
    changed = augmentation(digits, training=True)
    assert changed.shape == digits.shape and not np.allclose(changed, digits)


def one_digit():
    """A one and a dot, off-centre, in a batch of one."""
    image = np.zeros((1, 28, 28, 1), "float32")
    image[0, 6:22, 12:15] = 1.0
    image[0, 6:9, 9:12] = 0.5
    return image


def ink(layer, images):
    return keras.ops.convert_to_numpy(layer(images, training=True))


def test_ink_augmentation_acts_in_training_only_and_only_when_asked(tmp_path):
    train = recipe_params("strong")["train"]
    assert "RandomInk" not in [type(layer).__name__ for layer in build_model(train).layers]
    for key in ("thickness", "elastic", "blur"):
        augment = {**train["augment"], key: 0.5}
        layers = build_model({**train, "augment": augment}).layers
        assert [type(layer).__name__ for layer in layers[:2]] == ["RandomAffine", "RandomInk"]
        assert getattr(layers[1], key) == 0.5
    layer = RandomInk(thickness=1, elastic=2, blur=1, seed=0)
    digits = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    assert np.array_equal(layer(digits, training=False), digits)


@pytest.mark.parametrize("key, value", [("light", 0.5), ("noise", 0.1), ("erase", 0.2)])
def test_paper_changes_act_in_training_only_and_only_when_asked(key, value):
    train = recipe_params("handwriting")["train"]
    assert "RandomPaper" not in [type(layer).__name__ for layer in build_model(train).layers]
    layers = build_model({**train, "augment": {**train["augment"], key: value}}).layers
    assert type(layers[2]).__name__ == "RandomPaper" and getattr(layers[2], key) == value
    digits = np.random.default_rng(0).random((64, 28, 28, 1)).astype("float32")
    assert np.array_equal(layers[2](digits, training=False), digits)
    assert not np.allclose(ink(layers[2], digits), digits)


def blank(count, value=0.0):
    return np.full((count, 28, 28, 1), value, "float32")


def test_light_greys_half_the_papers_up_to_its_level_darker_towards_one_side():
    papers = ink(RandomPaper(light=0.6, seed=0), blank(2000))[..., 0]
    lit = papers.max(axis=(1, 2)) > 0
    assert 0.45 < lit.mean() < 0.55
    assert papers.max() <= 0.6 + 1e-6 and papers[lit].max(axis=(1, 2)).max() > 0.58
    # Across each lit paper the light falls along one direction: a plane, clipped at its ends.
    rows, columns = np.mgrid[0:28, 0:28]
    falls = []
    for paper in papers[lit][:200]:
        inside = (paper > paper.min() + 1e-4) & (paper < paper.max() - 1e-4)
        if inside.sum() < 10:
            continue
        design = np.stack([rows[inside], columns[inside], np.ones(inside.sum())], axis=1)
        fitted, *_ = np.linalg.lstsq(design, paper[inside], rcond=None)
        np.testing.assert_allclose(design @ fitted, paper[inside], atol=1e-4)
        falls.append(1 - paper.min() / paper.max())
    assert min(falls) < 0.1 and max(falls) > 0.9
    # The ink is screened over the paper: 1 - (1 - ink)(1 - paper), full white staying white.
    same_draws = ink(RandomPaper(light=0.6, seed=0), blank(2000, 0.5))[..., 0]
    np.testing.assert_allclose(same_draws, 1 - 0.5 * (1 - papers), atol=1e-6)
    assert ink(RandomPaper(light=0.6, seed=0), blank(50, 1.0)).min() == 1.0


def test_noise_turns_up_to_its_share_of_pixels_black_or_white_and_adds_grain():
    grey = blank(2000, 0.5)
    noisy = ink(RandomPaper(noise=0.2, seed=0), grey)[..., 0]
    changed = np.abs(noisy - 0.5).max(axis=(1, 2)) > 0
    assert 0.45 < changed.mean() < 0.55
    extreme = ((noisy == 0) | (noisy == 1)).mean(axis=(1, 2))[changed]
    white, black = (noisy == 1).mean(axis=(1, 2))[changed], (noisy == 0).mean(axis=(1, 2))[changed]
    # Grain of sigma 0.2 at most reaches 0 or 1 from 0.5 only 2.5 sigmas out (1.2% of pixels):
    # the rest is the share drawn, uniform up to 0.2, give or take 784 pixels' binomial spread.
    assert 0.17 < extreme.max() < 0.2 + 0.012 + 4 * 0.0143
    assert extreme.mean() == pytest.approx(0.1, abs=0.01)
    assert white.mean() == pytest.approx(black.mean(), abs=0.005)
    grain = [np.std(image[(image > 0) & (image < 1)]) for image in noisy[changed]]
    assert min(grain) < 0.01 and 0.17 < max(grain) < 0.21


def test_erase_paints_half_the_images_with_one_grey_rectangle_up_to_its_share():
    erased = ink(RandomPaper(erase=0.2, seed=0), blank(600))[..., 0]
    painted = erased.max(axis=(1, 2)) > 0
    assert 0.4 < painted.mean() < 0.6
    areas = []
    for image in erased[painted]:
        rows, columns = np.nonzero(image)
        box = image[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
        assert np.all(box == box[0, 0]) and box[0, 0] >= 0.25  # one rectangle of one grey
        height, width = box.shape
        areas.append(height * width)
        sides = sorted((height, width))
        touches_an_edge = rows.min() == 0 or columns.min() == 0 or rows.max() == 27 or columns.max() == 27
        assert touches_an_edge or sides[1] <= 3 * sides[0] + 2
    # Pixel centres inside a rectangle of area a number at most about a + its perimeter.
    assert max(areas) <= 0.2 * 784 + 2 * (np.sqrt(3 * 0.2 * 784) + np.sqrt(0.2 * 784 / 3)) + 1
    assert max(areas) > 0.15 * 784 and min(areas) < 0.05 * 784


def test_erase_below_the_smallest_share_paints_rectangles_of_that_share():
    erased = ink(RandomPaper(erase=0.005, seed=0), blank(600))[..., 0]
    areas = (erased > 0).sum(axis=(1, 2))
    painted = areas[areas > 0]
    # 0.005 of 784 pixels is 3.9 pixels; its pixel-centre count is 2-8 (sides within 1:3).
    assert painted.max() <= 8 and painted.mean() < 6


def test_ink_normalization_brings_paper_to_black_and_ink_to_white():
    """By hand: paper at 0.3 with strokes at 0.8 and 0.55 become 0, 1 and 0.5; MNIST's own
    digits, on black with full-white ink, pass unchanged."""
    photo = np.full((1, 28, 28, 1), 0.3, "float32")
    photo[0, 5:20, 10:12] = 0.8
    photo[0, 5:20, 15] = 0.55
    expected = np.zeros_like(photo)
    expected[0, 5:20, 10:12] = 1.0
    expected[0, 5:20, 15] = 0.5
    normalized = keras.ops.convert_to_numpy(InkNormalization()(photo))
    np.testing.assert_allclose(normalized, expected, atol=1e-6)
    digit = one_digit()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(InkNormalization()(digit)), digit)
    assert np.all(keras.ops.convert_to_numpy(InkNormalization()(blank(1, 0.4))) == 0)


def test_thickness_blends_towards_dilation_or_erosion_up_to_its_limit():
    images = np.repeat(one_digit(), 4000, axis=0)
    thicker = ndimage.grey_dilation(images[0, :, :, 0], size=3)
    thinner = ndimage.grey_erosion(images[0, :, :, 0], size=3, mode="constant", cval=0)
    drawn = ink(RandomInk(thickness=0.6, seed=0), images)[..., 0]
    # Each output is the digit moved a fraction t of the way to thicker (t > 0) or thinner.
    towards = np.where(drawn.sum(axis=(1, 2)) > images[0].sum(), 1, -1)
    fractions = []
    for image, sign in zip(drawn, towards):
        target = thicker if sign > 0 else thinner
        changed = target != images[0, :, :, 0]
        amount = (image - images[0, :, :, 0])[changed] / (target - images[0, :, :, 0])[changed]
        np.testing.assert_allclose(amount, amount[0], atol=1e-5)
        fractions.append(sign * amount[0])
    assert -0.6 - 1e-6 <= min(fractions) < -0.59 and 0.59 < max(fractions) <= 0.6 + 1e-6
    assert abs(np.mean(fractions)) < 0.03


@pytest.mark.slow  # 9 s: the heaviest of the fast subset
def test_blur_blends_towards_the_gaussian_of_its_sigma_then_back_to_full_white():
    images = np.repeat(one_digit(), 200, axis=0)
    original = images[0, :, :, 0]
    blurred = keras.ops.convert_to_numpy(gaussian_blurred(images[:1], 1.5))[0, :, :, 0]
    reference = ndimage.gaussian_filter(original, 1.5, mode="constant", truncate=3)
    np.testing.assert_allclose(blurred, reference, atol=2e-3)
    drawn = ink(RandomInk(blur=1.5, seed=0), images)[..., 0]
    # Each output is the digit moved a fraction of the way to the blurred one, then scaled so
    # that its strongest ink is 1 again.
    fractions = np.linspace(0, 1, 401)
    candidates = original + fractions[:, None, None] * (blurred - original)
    candidates /= candidates.max(axis=(1, 2), keepdims=True)
    distances = np.abs(drawn[:, None] - candidates[None]).max(axis=(2, 3))
    assert distances.min(axis=1).max() < 2e-3
    amounts = fractions[distances.argmin(axis=1)]
    assert amounts.min() < 0.02 and amounts.max() > 0.98
    np.testing.assert_allclose(drawn.max(axis=(1, 2)), 1.0, atol=1e-6)


def mean_stroke_ink(digits):
    return digits.sum(axis=(1, 2)) / (digits > 0.05).sum(axis=(1, 2))


def test_augmented_ink_is_what_predict_feeds_the_model():
    """Predict brings every digit's ink to full white; the augmented training digits are
    already so, and predict's preparation of them leaves their ink as it is."""
    images = np.zeros((40, 28, 28, 1), "float32")
    images[:, 4:24, 13:16] = 1.0  # a one of MNIST's height, with a flag
    images[:, 4:7, 9:13] = 1.0
    images[20:, 4:24, 14] = 0.4  # fainter ink down the middle, which blur fades further
    drawn = ink(RandomInk(thickness=1, elastic=1.5, blur=1, seed=0), images)[..., 0]
    prepared = np.stack([mnist_like(Image.fromarray(np.round(image * 255).astype(np.uint8)))
                         for image in drawn])
    np.testing.assert_allclose(drawn.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(prepared.max(axis=(1, 2)), 1.0, atol=1e-6)
    np.testing.assert_allclose(mean_stroke_ink(prepared).mean(), mean_stroke_ink(drawn).mean(),
                               rtol=0.15)


def test_elastic_field_is_smooth_independent_in_x_and_y_and_as_long_as_asked():
    field = keras.ops.convert_to_numpy(RandomInk(elastic=2.0, seed=0).field(200, 28, 28))
    lengths = np.linalg.norm(field, axis=-1)
    np.testing.assert_allclose(lengths.max(axis=(1, 2)), 2.0, rtol=1e-5)
    # Smooth: neighbouring pixels move alike (white noise: 1.3 times its mean size).
    assert np.abs(np.diff(field, axis=1)).mean() < 0.3 * np.abs(field).mean()
    # Keras' elastic_transform draws both fields from one seed; these must differ.
    assert abs(np.corrcoef(field[..., 0].ravel(), field[..., 1].ravel())[0, 1]) < 0.1
    assert not np.allclose(field[0], field[1])


def test_bilinear_reading_matches_scipy_inside_and_outside_the_image():
    rng = np.random.default_rng(1)
    images = rng.random((3, 28, 28, 1)).astype("float32")
    rows, columns = rng.uniform(-2, 29, (2, 3, 28, 28)).astype("float32")
    ours = keras.ops.convert_to_numpy(bilinear(images, rows, columns))[..., 0]
    for image, row, column, read in zip(images, rows, columns, ours):
        reference = ndimage.map_coordinates(image[..., 0], [row, column], order=1,
                                            mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(read, reference, atol=1e-6)


@pytest.mark.slow  # 10-20 s: a real fit of the photo model
def test_augmentation_trains_on_batches_of_unknown_size_and_survives_saving(tmp_path):
    """The train stage feeds a generator, so the traced step has no batch size. The photo
    recipe has every augmentation layer and the ink normalization."""
    train = recipe_params("photo")["train"]
    model = compile_model(build_model(train), train, steps_per_epoch=2)
    images = np.random.default_rng(0).random((96, 28, 28, 1)).astype("float32")
    labels = np.eye(10, dtype="float32")[np.arange(96) % 10]
    batches = ((images[i:i + 64], labels[i:i + 64]) for _ in range(2) for i in (0, 64))
    history = model.fit(batches, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert [type(layer).__name__ for layer in loaded.layers][:4] == [
        "RandomAffine", "RandomInk", "RandomPaper", "InkNormalization"]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-6)


def test_elastic_moves_ink_by_the_field():
    layer = RandomInk(elastic=2.0, seed=0)
    image = np.zeros((300, 28, 28, 1), "float32")
    image[:, 13:15, 13:15] = 1.0  # a dot: where its ink lands shows the displacement there
    drawn = ink(layer, image)[..., 0]
    rows, columns = np.mgrid[:28, :28]
    mass = drawn.sum(axis=(1, 2))
    centres = np.stack([(drawn * rows).sum(axis=(1, 2)) / mass,
                        (drawn * columns).sum(axis=(1, 2)) / mass], axis=1)
    moved = np.linalg.norm(centres - 13.5, axis=1)
    # Bilinear reading reaches a pixel beyond the displaced point.
    assert moved.max() <= 2.0 + 1.0 and np.median(moved) > 0.3
    np.testing.assert_allclose(np.median(mass), 4.0, rtol=0.25)  # moved, not smeared away


def affine(image, angle=0.0, scale=1.0, shift_x=0.0, shift_y=0.0):
    draws = (np.array([value], "float32") for value in (angle, scale, shift_x, shift_y))
    rows = affine_rows(*draws, height=28, width=28)
    return keras.ops.convert_to_numpy(
        keras.ops.image.affine_transform(image, rows, fill_mode="constant"))


def test_affine_rows_turn_zoom_and_shift_about_the_centre():
    seven = np.zeros((1, 28, 28, 1), "float32")
    seven[0, 5, 10:18] = seven[0, 5:20, 17] = 1
    square = np.zeros((1, 28, 28, 1), "float32")
    square[0, 10:18, 10:18] = 1
    half_square = np.zeros_like(square)
    half_square[0, 12:16, 12:16] = 1

    assert np.allclose(affine(seven), seven, atol=1e-6)
    assert np.allclose(affine(seven, angle=np.pi / 2), np.rot90(seven, axes=(1, 2)), atol=1e-6)
    moved = np.roll(seven, (-2, 3), axis=(1, 2))  # right 3, up 2
    assert np.array_equal(affine(seven, shift_x=3, shift_y=-2), moved)
    assert np.allclose(affine(square, scale=2), half_square, atol=1e-6)


def test_learning_rate_decays_once_an_epoch():
    train = {**project_params()["train"], "optimizer": {"name": "adam", "learning_rate": 0.01},
             "lr_decay": 0.5}
    optimizer = build_optimizer(train, steps_per_epoch=10)

    rates = []
    for step in (0, 9, 10, 19, 20):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert np.allclose(rates, [0.01, 0.01, 0.005, 0.005, 0.0025])


@pytest.mark.parametrize("warmup_epochs, expected", [
    # Linear to the peak over the first epoch, then half a cosine over the last two.
    (1, [0.0, 0.005, 0.01, 0.005, 0.0]),
    # No warm-up: half a cosine over all three epochs, from the peak.
    (0, [0.01, 0.00933, 0.0075, 0.0025, 0.0]),
])
def test_cosine_schedule_falls_to_zero_after_any_warm_up(warmup_epochs, expected):
    train = {**project_params()["train"], "optimizer": {"name": "adam", "learning_rate": 0.01},
             "lr_schedule": "cosine", "lr_warmup_epochs": warmup_epochs, "epochs": 3}
    optimizer = build_optimizer(train, steps_per_epoch=10)

    rates = []
    for step in (0, 5, 10, 20, 30):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert np.allclose(rates, expected, atol=1e-5)


def test_fused_batch_normalization_matches_keras_and_reloads(tmp_path):
    images = np.random.default_rng(0).normal(2.0, 3.0, (32, 6, 6, 4)).astype("float32")
    fused, keras_own = FusedBatchNormalization(), keras.layers.BatchNormalization()
    for layer in (fused, keras_own):
        layer.build(images.shape)
        for _ in range(3):
            trained = layer(images, training=True)
        assert abs(float(np.mean(trained))) < 1e-5 and abs(float(np.std(trained)) - 1) < 1e-3
    np.testing.assert_allclose(fused(images, training=True), keras_own(images, training=True),
                               atol=1e-4)
    # TensorFlow's kernel updates the moving variance with the unbiased batch variance.
    np.testing.assert_allclose(fused.moving_mean, keras_own.moving_mean, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, keras_own.moving_variance, rtol=0.01)
    np.testing.assert_allclose(fused(images), keras_own(images), rtol=0.01, atol=1e-3)

    model = keras.Sequential([keras.Input((6, 6, 4)), fused])
    model.save(tmp_path / "model.keras")
    reloaded = load_model(tmp_path / "model.keras")
    assert type(reloaded.layers[0]) is FusedBatchNormalization
    np.testing.assert_array_equal(reloaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_label_smoothing_and_optimizer_arguments_reach_the_compiled_model():
    train = {**project_params()["train"], "label_smoothing": 0.1,
             "optimizer": {"name": "adam", "learning_rate": 0.002, "use_ema": True,
                           "ema_momentum": 0.95, "weight_decay": 0.0004}}
    model = compile_model(build_model(train), train, steps_per_epoch=10)

    assert model.loss.label_smoothing == 0.1
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.use_ema, optimizer.ema_momentum, optimizer.weight_decay) == (True, 0.95, 0.0004)
    assert float(optimizer.learning_rate) == pytest.approx(0.002)


def test_augmentation_draws_span_the_limits_in_their_units():
    layer = RandomAffine(rotation=10, shift=0.1, zoom=0.2, seed=0)
    draws = {name: keras.ops.convert_to_numpy(values)
             for name, values in layer.draw(np.zeros((20_000, 28, 28, 1), "float32")).items()}

    limits = {"angle": np.deg2rad(10), "scale": 0.2, "shift_x": 2.8, "shift_y": 2.8}
    for name, limit in limits.items():
        centred = draws[name] - (1 if name == "scale" else 0)
        assert np.abs(centred).max() <= limit * (1 + 1e-6)
        assert np.abs(centred).max() > 0.99 * limit, name
        assert abs(np.mean(centred)) < 0.02 * limit, name
    assert not np.allclose(draws["shift_x"], draws["shift_y"])


def reference(image, matrix, offset):
    """scipy's bilinear resampling, (row, column) in, zeros outside the image."""
    return ndimage.affine_transform(image[0, :, :, 0], matrix, offset=offset, order=1,
                                    mode="grid-constant", cval=0.0)


def test_augmentation_geometry_at_its_limits_matches_scipy():
    image = np.zeros((1, 28, 28, 1), "float32")
    image[0, 6:22, 12:15] = 1.0  # a one, off-centre
    image[0, 6:9, 9:12] = 0.5
    centre = np.array([13.5, 13.5])
    max_angle, max_shift, max_zoom = np.deg2rad(10), 0.1 * 28, 0.1

    def layer(**draws):
        values = {"angle": 0.0, "scale": 1.0, "shift_x": 0.0, "shift_y": 0.0, **draws}
        arrays = {name: np.array([value], "float32") for name, value in values.items()}
        return keras.ops.convert_to_numpy(RandomAffine.transform(image, **arrays))[0, :, :, 0]

    # scipy.ndimage.rotate turns the array anticlockwise as displayed, about its centre.
    rotated = ndimage.rotate(image[0, :, :, 0], 10, reshape=False, order=1,
                             mode="grid-constant", cval=0.0)
    np.testing.assert_allclose(layer(angle=max_angle), rotated, atol=1e-4)
    # Right by the largest shift: the output reads each pixel from 2.8 columns to its left.
    np.testing.assert_allclose(layer(shift_x=max_shift),
                               reference(image, np.eye(2), [0.0, -max_shift]), atol=1e-5)
    np.testing.assert_allclose(layer(shift_y=-max_shift),
                               reference(image, np.eye(2), [max_shift, 0.0]), atol=1e-5)
    # Zoomed out by the largest zoom: each output pixel reads 1.1 times as far from the centre.
    zoomed = reference(image, (1 + max_zoom) * np.eye(2), centre - (1 + max_zoom) * centre)
    np.testing.assert_allclose(layer(scale=1 + max_zoom), zoomed, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_batch_normalization_trains_like_keras(dtype):
    images = np.random.default_rng(1).normal(2.0, 3.0, (16, 5, 5, 3)).astype("float32")
    inputs = tf.cast(images, dtype)
    upstream = tf.cast(np.random.default_rng(2).normal(size=images.shape), dtype)
    results = []
    for layer_class in (FusedBatchNormalization, keras.layers.BatchNormalization):
        layer = layer_class(dtype=keras.DTypePolicy(f"mixed_{dtype}") if dtype != "float32"
                            else "float32")
        layer.build(images.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 3))
        layer.beta.assign(np.linspace(-1, 1, 3))
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.cast(outputs * upstream, "float32"))
        gradients = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
        assert outputs.dtype == dtype
        results.append([np.asarray(tf.cast(value, "float32"))
                        for value in (outputs, *gradients, layer.moving_mean)])
    tolerance = 1e-4 if dtype == "float32" else 0.05
    for fused, own in zip(*results, strict=True):
        np.testing.assert_allclose(fused, own, atol=tolerance * max(1, np.abs(own).max()))


def moved(images, rows, columns):
    """A hand-written reference for Shifted: numpy slicing into a black canvas."""
    canvas = np.zeros_like(images)
    height, width = images.shape[1:3]
    canvas[:, max(rows, 0):height + min(rows, 0), max(columns, 0):width + min(columns, 0)] = \
        images[:, max(-rows, 0):height - max(rows, 0), max(-columns, 0):width - max(columns, 0)]
    return canvas


@pytest.mark.parametrize("shift", [1, 2])
def test_test_time_shifts_average_five_views_and_survive_saving(tmp_path, shift):
    train = project_params()["train"]
    base = build_model(train)
    images = np.random.default_rng(0).random((6, 28, 28, 1)).astype("float32")
    views = [images] + [moved(images, rows, columns)
                        for rows, columns in ((-shift, 0), (shift, 0), (0, -shift), (0, shift))]
    expected = np.mean([base.predict(view, verbose=0) for view in views], axis=0)
    assert not np.allclose(expected, base.predict(images, verbose=0), atol=1e-4)

    averaged = model_module.with_test_time_shifts(base, shift)
    averaged.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert np.allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    assert model_module.with_test_time_shifts(base, 0) is base
