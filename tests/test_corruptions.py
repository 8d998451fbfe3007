"""MNIST-C's corruptions: each has the property the benchmark gives it, and the mnist_c stage
writes what params.yaml asks for, the same for the same seed."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from skimage import color
from skimage.feature import canny
from skimage.util import random_noise

from stages.lib import corruptions
from stages.lib.corruptions import CORRUPTIONS, SIDE
from tests.conftest import run_stage


def rng(seed=0):
    return np.random.default_rng(seed)


def blank(count=1):
    return np.zeros((count, SIDE, SIDE))


def square(count=1, low=7, high=21):
    images = blank(count)
    images[:, low:high, low:high] = 1.0
    return images


def bar(count=1, horizontal=True):
    """A line one pixel thick through the centre, 17 pixels long."""
    images = blank(count)
    if horizontal:
        images[:, 14, 6:23] = 1.0
    else:
        images[:, 6:23, 14] = 1.0
    return images


def centroid(image):
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    return np.array([(rows * image).sum(), (columns * image).sum()]) / image.sum()


def principal_angle(image):
    """The angle of the ink's long axis from the horizontal, in radians (rows point down)."""
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    row, column = centroid(image)
    weights = image / image.sum()
    cov_cc = (weights * (columns - column) ** 2).sum()
    cov_rr = (weights * (rows - row) ** 2).sum()
    cov_rc = (weights * (rows - row) * (columns - column)).sum()
    return 0.5 * np.arctan2(2 * cov_rc, cov_cc - cov_rr)


def digits(count=20):
    """Square rings of several sizes: ink on black like MNIST's, with room around it."""
    images = blank(count)
    for index in range(count):
        low = 4 + index % 5
        images[index, low:SIDE - low, low:SIDE - low] = 1.0
        images[index, low + 3:SIDE - low - 3, low + 3:SIDE - low - 3] = 0.0
    return images


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_keeps_shape_and_range_and_changes_digits(name):
    images = digits()
    corrupted = CORRUPTIONS[name](images, rng())
    assert corrupted.shape == images.shape
    assert corrupted.min() >= 0 and corrupted.max() <= 1
    assert not np.allclose(corrupted, images)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_draws_the_same_for_the_same_generator(name):
    images = digits(6)
    np.testing.assert_array_equal(CORRUPTIONS[name](images, rng(3)),
                                  CORRUPTIONS[name](images, rng(3)))


def test_shot_noise_counts_photons():
    level = 0.25
    images = np.full((200, SIDE, SIDE), level)
    noisy = corruptions.shot_noise(images, rng())
    photons = corruptions.SHOT_NOISE_PHOTONS
    counts = noisy * photons
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole photons, clipped
    poisson = stats.poisson(level * photons)
    expected = sum(min(k / photons, 1) * poisson.pmf(k) for k in range(40))
    assert noisy.mean() == pytest.approx(expected, abs=0.005)
    assert corruptions.shot_noise(blank(), rng()).max() == 0  # no light, no photons


def test_impulse_noise_sets_its_share_of_pixels_to_black_or_white():
    noisy = corruptions.impulse_noise(np.full((100, SIDE, SIDE), 0.5), rng())
    assert np.isin(noisy, [0.0, 0.5, 1.0]).all()
    hit = noisy != 0.5
    assert hit.mean() == pytest.approx(corruptions.IMPULSE_NOISE_AMOUNT, abs=0.005)
    assert (noisy[hit] == 1).mean() == pytest.approx(0.5, abs=0.02)


class NoSwaps:
    """A generator whose coin never calls for a swap: glass blur's blurs alone."""

    def random(self, count):
        return np.ones(count)

    def integers(self, low, high, size):
        return np.zeros(size, dtype=int)


# scikit-image's Gaussian of sigma 0.7 (truncated at 4 sigmas: 3 pixels), worked by hand:
# exp(-x**2 / 0.98) for x = 0, 1, 2, 3, divided by their sum over -3..3 (1.754818).
GLASS_KERNEL = np.array([0.0000585, 0.0096113, 0.2054009, 0.5698586, 0.2054009, 0.0096113,
                         0.0000585])


def test_glass_blur_blurs_down_the_columns_only_as_the_benchmarks_call_does():
    # The benchmark: gaussian(x, sigma=0.7, multichannel=True) on a 28x28 image, cut to uint8,
    # swaps, then the same blur again. multichannel takes the columns for colour channels.
    impulse = np.zeros((1, SIDE, SIDE))
    impulse[0, 14, 14] = 1.0
    first = np.zeros(SIDE)
    first[11:18] = np.floor(GLASS_KERNEL * 255) / 255  # 0, 2, 52, 145, 52, 2, 0 levels
    expected = np.zeros((SIDE, SIDE))
    expected[:, 14] = np.convolve(first, GLASS_KERNEL, mode="same")
    np.testing.assert_allclose(corruptions.glass_blur(impulse, NoSwaps())[0], expected, atol=1e-5)


def test_glass_blur_moves_ink_around_without_losing_it():
    images = digits()
    glassy = corruptions.glass_blur(images, rng())
    twice_blurred = corruptions.blurred(corruptions.blurred(images, (0.7, 0)), (0.7, 0))
    # The swaps only exchange pixels; cutting to 255 levels loses under 1/255 a pixel.
    np.testing.assert_allclose(glassy.sum(axis=(1, 2)), images.sum(axis=(1, 2)), rtol=0.03)
    assert np.abs(glassy - twice_blurred).max() > 0.1
    flat = np.full((2, SIDE, SIDE), 0.6)
    np.testing.assert_allclose(corruptions.glass_blur(flat, rng()), np.floor(0.6 * 255) / 255)


def test_motion_blur_streaks_one_way_within_45_degrees():
    point = blank(50)
    point[:, 14, 14] = 1.0
    streaks = corruptions.motion_blur(point, rng())
    # The weights sum to one; the far taps, under 1e-5 together, may fall off the image.
    np.testing.assert_allclose(streaks.sum(axis=(1, 2)), 1.0, atol=1e-5)
    for streak in streaks:
        rows, columns = np.nonzero(streak > 1e-6)
        # A pixel gathers from up to 2 * radius pixels ahead of it, so the point's ink trails
        # behind it: to the left, never more than 45 degrees off the row.
        assert (columns <= 14).all()
        assert (np.abs(rows - 14) <= np.abs(columns - 14) + 1).all()
        assert (14 - columns).max() <= 2 * corruptions.MOTION_BLUR["radius"]
    taps = np.arange(2 * corruptions.MOTION_BLUR["radius"] + 1)
    gaussian = np.exp(-(taps**2) / (2 * corruptions.MOTION_BLUR["sigma"] ** 2))
    # The pixel itself keeps the first tap's weight of a one-sided Gaussian.
    np.testing.assert_allclose(streaks[:, 14, 14], gaussian[0] / gaussian.sum())


def test_shear_slants_vertical_lines_and_keeps_horizontal_ones():
    slanted = corruptions.shear(bar(20, horizontal=False), rng())
    rows = np.arange(8, 21)
    for image in slanted:
        centres = [(np.arange(SIDE) * image[row]).sum() / image[row].sum() for row in rows]
        slope = np.polyfit(rows, centres, 1)[0]
        assert abs(slope) == pytest.approx(np.sin(corruptions.SHEAR), abs=0.02)
    level = corruptions.shear(bar(20, horizontal=True), rng())
    assert np.abs([principal_angle(image) for image in level]).max() < 0.01


def spread(image):
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    row, column = centroid(image)
    return np.sqrt((image * ((rows - row) ** 2 + (columns - column) ** 2)).sum() / image.sum())


def test_scale_shrinks_about_the_centre():
    ring = digits(1)
    shrunk = corruptions.scale(ring, rng())[0]
    assert spread(shrunk) / spread(ring[0]) == pytest.approx(corruptions.SCALE, rel=0.03)
    np.testing.assert_allclose(centroid(shrunk), [corruptions.CENTRE] * 2, atol=0.05)


def test_rotate_turns_by_its_angle_either_way():
    turned = corruptions.rotate(bar(40), rng())
    angles = np.array([principal_angle(image) for image in turned])
    np.testing.assert_allclose(np.abs(angles), corruptions.ROTATE, atol=0.02)
    assert (angles > 0).any() and (angles < 0).any()


def test_brightness_is_the_benchmarks_hsv_round_trip():
    images = rng().random((5, SIDE, SIDE))
    hsv = color.rgb2hsv(color.gray2rgb(images))
    hsv[..., 2] = np.clip(hsv[..., 2] + corruptions.BRIGHTNESS, 0, 1)
    np.testing.assert_allclose(corruptions.brightness(images, rng()),
                               color.rgb2gray(color.hsv2rgb(hsv)), atol=1e-6)


def test_translate_moves_by_its_distance_on_each_axis():
    ring = digits(30)
    moved = corruptions.translate(ring, rng())
    for before, after in zip(ring, moved):
        assert after.sum() == before.sum()  # the rings stay inside the frame
        shift = centroid(after) - centroid(before)
        np.testing.assert_allclose(np.abs(shift), corruptions.TRANSLATE)


def test_stripe_inverts_the_outer_quarters_only():
    images = digits(3)
    striped = corruptions.stripe(images, rng())
    np.testing.assert_array_equal(striped[:, :, :7], 1 - images[:, :, :7])
    np.testing.assert_array_equal(striped[:, :, 21:], 1 - images[:, :, 21:])
    np.testing.assert_array_equal(striped[:, :, 7:21], images[:, :, 7:21])


def test_fog_adds_smooth_clouds_and_dims_to_keep_the_range():
    images = digits(10)
    foggy = corruptions.fog(images, rng())
    strength = corruptions.FOG["strength"]
    clouds = foggy * (1 + strength) - images  # images' brightest ink is 1
    assert clouds.min() >= -1e-9 and clouds.max() <= strength + 1e-9
    # Clouds, not noise: neighbours differ far less than independent pixels would.
    neighbours = np.abs(np.diff(clouds, axis=2)).mean()
    assert neighbours < 0.25 * clouds.std() * np.sqrt(2)
    np.testing.assert_array_equal(corruptions.fog(blank(), rng()), 0)  # nothing to keep on top of


def test_spatter_drops_gray_mud_blotches():
    spattered = corruptions.spatter(blank(200), rng())
    gray = corruptions.SPATTER["mud_gray"]
    mud = spattered[spattered > 0]
    assert 0 < mud.size < 0.3 * spattered.size
    assert mud.min() >= corruptions.SPATTER["mud_cutoff"] * gray - 1e-9 and mud.max() <= gray + 1e-9


def test_dotted_line_is_dashed_two_columns_on_two_off_edge_to_edge():
    lines = corruptions.dotted_line(blank(50), rng())
    dashes = (np.arange(SIDE) // 2) % 2 == 1
    dashes[SIDE - 1] = False  # the line ends before its last column
    lit = (lines > 0).any(axis=1)
    assert (lit == dashes).all()
    assert (lines > 0).sum(axis=1).max() <= 3  # about 1.5 rows either side of the line


def test_zigzag_spans_its_columns_with_teeth():
    corners = corruptions.zigzag_corners(23.4, tooth=2)
    np.testing.assert_allclose(corners[:, 1:7], [[2, 6, 10, 14, 18, 22], [2, -2, 2, -2, 2, -2]])
    lines = corruptions.zigzag(blank(30), rng())
    columns = np.arange(SIDE)
    spans = []
    for image in lines:
        lit = np.nonzero(image.any(axis=0))[0]
        assert lit.min() >= 1 and lit.max() <= 26
        spans.append(len(lit))
        inner = columns[4:22]
        if not image[:, inner].any(axis=0).all():  # begun near the top or bottom: partly off
            continue
        centres = np.array([(np.arange(SIDE) * image[:, c]).sum() / image[:, c].sum() for c in inner])
        detrended = centres - np.polyval(np.polyfit(inner, centres, 1), inner)
        assert 2 <= np.ptp(detrended) <= 6  # teeth of +-2 rows, blurred by the stroke
        assert (np.diff(np.sign(np.diff(detrended))) != 0).sum() >= 4  # up, down, up...
    assert np.median(spans) >= 22


def test_canny_edges_outline_a_filled_square():
    edges = corruptions.canny_edges(square(), rng())[0]
    assert set(np.unique(edges)) == {0.0, 1.0}
    assert edges[10:18, 10:18].sum() == 0  # nothing inside
    assert edges[5:23, 5:23].sum() == edges.sum()  # nothing far outside
    assert edges.sum() >= 4 * 12


# The stage ---------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path):
    from stages.lib import splits

    images = np.round(digits(12) * 255).astype(np.uint8)
    (tmp_path / splits.PREPARED_DIR).mkdir(parents=True)
    np.savez_compressed(tmp_path / splits.PREPARED_DIR / "test.npz", images=images,
                        labels=np.arange(12) % 10)
    return tmp_path


def run_mnist_c(project, **section):
    (project / "params.yaml").write_text(yaml.safe_dump({"mnist_c": section}))
    result = run_stage("mnist_c", project, check=False)
    if result.returncode:
        return result
    with np.load(project / "data/mnist_c.npz") as arrays:
        return {name: arrays[name] for name in arrays.files}


def test_stage_writes_the_chosen_corruptions_in_order_each_its_own_stream(project):
    written = run_mnist_c(project, corruptions=["zigzag", "shot_noise", "rotate"], count=None,
                          seed=1)
    assert list(written) == ["labels", "zigzag", "shot_noise", "rotate"]
    assert written["zigzag"].dtype == np.uint8 and written["zigzag"].shape == (12, SIDE, SIDE)
    alone = run_mnist_c(project, corruptions=["rotate"], count=None, seed=1)
    np.testing.assert_array_equal(alone["rotate"], written["rotate"])  # its stream, whatever else
    reseeded = run_mnist_c(project, corruptions=["rotate"], count=None, seed=2)
    assert not np.array_equal(reseeded["rotate"], written["rotate"])


def test_stage_corrupts_the_first_count_test_digits(project):
    written = run_mnist_c(project, corruptions=["stripe"], count=5, seed=0)
    np.testing.assert_array_equal(written["labels"], np.arange(5))
    assert written["stripe"].shape == (5, SIDE, SIDE)
    too_many = run_mnist_c(project, corruptions=["stripe"], count=13, seed=0)
    assert too_many.stderr.strip() == ("mnist_c: mnist_c.count: 13 is more than the 12 test "
                                       "digits")


def test_stage_refuses_an_unknown_corruption_in_one_line(project):
    result = run_mnist_c(project, corruptions=["shot_noise", "frost"], count=None, seed=0)
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "mnist_c.corruptions" in message and "frost" in message


# The benchmark's formulas worked by hand on ramps, which bilinear resampling reproduces exactly
# inside the image: the benchmark warps each image with skimage's transform.warp and an
# inverse map A @ (column, row) + t, with t keeping (13.5, 13.5) in place.
COLUMN_RAMP = np.tile(np.arange(SIDE) / (SIDE - 1), (1, SIDE, 1))  # a pixel's value: column / 27
ROW_RAMP = COLUMN_RAMP.transpose(0, 2, 1)


class Fixed:
    """A generator whose every draw of a sign is `sign`, and whose integers are `integers`."""

    def __init__(self, sign=1.0, integers=()):
        self.sign, self.integers_given = sign, list(integers)

    def choice(self, options, size):
        return np.full(size, self.sign)

    def integers(self, low, high=None, size=None):
        return np.array(self.integers_given).reshape(size) if size else self.integers_given.pop(0)


def read_at(read_column, read_row):
    """Where the inverse map reads each output pixel (column, row) inside the image, as a mask,
    and the column and row it reads there."""
    rows, columns = np.mgrid[0:SIDE, 0:SIDE].astype(float)
    source_column, source_row = read_column(columns, rows), read_row(columns, rows)
    inside = ((source_column >= 0) & (source_column <= SIDE - 1)
              & (source_row >= 0) & (source_row <= SIDE - 1))
    return inside, source_column, source_row


def assert_reads(warped, inside, source_column, source_row):
    np.testing.assert_allclose(warped(COLUMN_RAMP)[0][inside],
                               (source_column / (SIDE - 1))[inside], atol=1e-9)
    np.testing.assert_allclose(warped(ROW_RAMP)[0][inside],
                               (source_row / (SIDE - 1))[inside], atol=1e-9)


def test_scale_reads_where_the_benchmarks_inverse_map_does():
    # AffineTransform(scale=1/0.7): source = 13.5 + (output - 13.5) / 0.7 on both axes.
    inside, column, row = read_at(lambda c, r: 13.5 + (c - 13.5) / 0.7,
                                  lambda c, r: 13.5 + (r - 13.5) / 0.7)
    assert inside.sum() == 18 * 18  # columns and rows 5-22
    assert_reads(lambda images: corruptions.scale(images, rng()), inside, column, row)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_rotate_reads_where_the_benchmarks_inverse_map_does(sign):
    # AffineTransform(rotation=c), c = +-0.4: source = R(c) @ (output - 13.5) + 13.5.
    angle = sign * 0.4
    inside, column, row = read_at(
        lambda c, r: 13.5 + np.cos(angle) * (c - 13.5) - np.sin(angle) * (r - 13.5),
        lambda c, r: 13.5 + np.sin(angle) * (c - 13.5) + np.cos(angle) * (r - 13.5))
    assert_reads(lambda images: corruptions.rotate(images, Fixed(sign)), inside, column, row)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_shear_reads_where_the_benchmarks_inverse_map_does(sign):
    # AffineTransform(shear=c), c = +-0.4: [[1, -sin c], [0, cos c]] about (13.5, 13.5).
    angle = sign * 0.4
    inside, column, row = read_at(lambda c, r: 13.5 + (c - 13.5) - np.sin(angle) * (r - 13.5),
                                  lambda c, r: 13.5 + np.cos(angle) * (r - 13.5))
    assert_reads(lambda images: corruptions.shear(images, Fixed(sign)), inside, column, row)


def test_translate_moves_whole_pixels_and_loses_what_leaves():
    # AffineTransform(translation=(dx, dy)), dx, dy = +-3: whole pixels, so bilinear is a copy.
    plane = (COLUMN_RAMP + 2 * ROW_RAMP) / 3
    moved = corruptions.translate(plane, Fixed(1.0))[0]
    expected = np.zeros((SIDE, SIDE))
    expected[3:, 3:] = plane[0, :-3, :-3]
    np.testing.assert_allclose(moved, expected)


def test_dotted_line_is_the_benchmarks_log_profile_in_dashes():
    # line_from_points(0, 10, 27, 10): 1 + log(1 - d / 2.3) at d rows from row 10, clipped:
    # 1 on the row, 1 + log(1 - 1/2.3) = 0.429455 one row off, 0 two rows off; dashes of two
    # columns, the first pair off; none in column 27, where line_from_points stops (columns
    # from floor(0) up to, not including, ceil(27)).
    dotted = corruptions.dotted_line(blank(), Fixed(integers=[10, 10]))[0]
    expected = np.zeros((SIDE, SIDE))
    on = ((np.arange(SIDE) // 2) % 2 == 1) & (np.arange(SIDE) < 27)
    expected[10, on] = 1.0
    expected[9, on] = expected[11, on] = 0.429455
    np.testing.assert_allclose(dotted, expected, atol=1e-6)


def test_zigzag_corners_are_the_benchmarks():
    # Length 23 (level), teeth of 2: corners every 2 at heights 0, +-2 up to column 22, then a
    # last one at 23 whose height the benchmark sets to r_i / (2 * (d - max_c)) = -2 / 6.
    columns, heights = corruptions.zigzag_corners(23.0, 2.0)
    np.testing.assert_allclose(columns, [0, 2, 6, 10, 14, 18, 22, 23])
    np.testing.assert_allclose(heights, [0, 2, -2, 2, -2, 2, -2, -1 / 3])


class LegacyStream:
    """Draws as the benchmark's code does, from NumPy's global legacy stream seeded with 0."""

    def __init__(self):
        self.stream = np.random.RandomState(0)

    def uniform(self, low, high, size):
        return self.stream.uniform(low, high, size)


# The benchmark's plasma_fractal(mapsize=4, wibbledecay=1.4) after np.random.seed(0), computed
# once with its code (google-research/mnist-c, corruptions.py).
BENCHMARK_PLASMA_4 = [[0.20027608, 1.0, 0.77043667, 0.98725896],
                      [0.42508218, 0.50200567, 0.56853886, 0.35481996],
                      [0.5028995, 0.34498072, 0.3164363, 0.74066182],
                      [0.94161411, 0.62464499, 0.0, 0.37173557]]


def test_fogs_clouds_are_the_benchmarks_plasma_for_the_same_draws():
    clouds = corruptions.plasma(1, LegacyStream(), 4, corruptions.FOG["decay"])[0]
    np.testing.assert_allclose(clouds, BENCHMARK_PLASMA_4, atol=1e-8)


def test_fog_adds_its_clouds_and_dims_as_the_benchmark_does(monkeypatch):
    clouds = np.linspace(0, 1, SIDE * SIDE).reshape(1, SIDE, SIDE)
    monkeypatch.setattr(corruptions, "plasma",
                        lambda count, rng, side, decay: np.pad(clouds, ((0, 0), (0, 228), (0, 228))))
    images = 0.8 * square()
    # The benchmark: x + 3 * clouds, times max(x) / (max(x) + 3), clipped.
    expected = np.clip((images + 3.0 * clouds) * 0.8 / (0.8 + 3.0), 0, 1)
    np.testing.assert_allclose(corruptions.fog(images, rng()), expected)


class FixedNormal:
    def __init__(self, values):
        self.values = values

    def normal(self, mean, spread, shape):
        return self.values.reshape(shape)


def test_spatter_is_the_benchmarks_mud_for_the_same_draws():
    from skimage.filters import gaussian

    liquid = rng(5).normal(0.65, 0.3, (SIDE, SIDE))
    images = square()
    # The benchmark (severity 4): gaussian(liquid, sigma=1), what is under 0.65 dropped, the rest
    # a mask blurred by sigma 1.5, kept from 0.8 up: the mud, of gray 63/255, over the ink.
    blurred_liquid = gaussian(liquid, sigma=1)
    blurred_liquid[blurred_liquid < 0.65] = 0
    mud = gaussian(np.where(blurred_liquid > 0.65, 1, 0).astype(np.float32), sigma=1.5)
    mud[mud < 0.8] = 0
    expected = np.clip(images[0] * (1 - mud) + 63 / 255 * mud, 0, 1)
    assert mud.max() > 0.8  # the draw spatters
    np.testing.assert_allclose(corruptions.spatter(images, FixedNormal(liquid))[0], expected,
                               atol=1e-6)


def test_impulse_noise_and_canny_edges_are_the_benchmarks_calls():
    images = digits(3)
    np.testing.assert_array_equal(
        corruptions.impulse_noise(images, rng(9)),
        random_noise(images, mode="s&p", amount=0.17, rng=rng(9)))
    np.testing.assert_array_equal(corruptions.canny_edges(images, rng()),
                                  np.stack([canny(image) for image in images]).astype(float))


def test_shot_noise_is_the_benchmarks_photon_count():
    class Counts:
        def poisson(self, expected):
            assert np.allclose(expected, 3 * square())  # 3 photons at full ink
            return np.where(square() > 0, 4, 1)

    np.testing.assert_allclose(corruptions.shot_noise(square(), Counts()),
                               np.where(square() > 0, 1.0, 1 / 3))


class FixedAngle:
    def __init__(self, degrees):
        self.degrees = degrees

    def uniform(self, low, high, size):
        return np.full(size, self.degrees)


# ImageMagick 6.9's MotionBlurImage(radius 10, sigma 3, angle) on a ring (rows and columns 8-19,
# hollow 11-16) saved as an 8-bit PNG, as the benchmark calls it through Wand, computed once
# (Debian's libmagickwand-6.q16-6, Wand 0.6) and stored as the PNG's decoded levels.
IMAGEMAGICK_MOTION_BLUR = Path(__file__).parent / "data/imagemagick_motion_blur.npz"


@pytest.mark.parametrize("degrees, name", [(0.0, "angle_plus0"), (30.0, "angle_plus30"),
                                           (-45.0, "angle_minus45")])
def test_motion_blur_is_imagemagicks_within_a_level(degrees, name):
    ring = blank()
    ring[0, 8:20, 8:20] = 1.0
    ring[0, 11:17, 11:17] = 0.0
    with np.load(IMAGEMAGICK_MOTION_BLUR) as expected:
        levels = expected[name].astype(float)
    ours = np.round(corruptions.motion_blur(ring, FixedAngle(degrees))[0] * 255)
    assert np.abs(ours - levels).max() <= 1 and np.abs(ours - levels).mean() < 0.25
