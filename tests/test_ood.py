"""The out-of-distribution set: digits that are not MNIST, drawn as users' scans and photos, in a
tuning part and a reporting part that share no source digit."""

import numpy as np
import pytest
from PIL import Image

from stages import ood
from stages.lib.drawn import PARTS, read_labels, read_not_digits
from stages.lib.prepare import ImageError, load_digit


def test_build_draws_every_part_draw_and_condition_with_its_label(tmp_path):
    count = 2 * len(ood.CONDITIONS)
    assert ood.build(tmp_path / "ood", count, draws=2, seed=0, not_digits=1) == count * 2 * len(PARTS)
    drawn = read_labels(tmp_path / "ood")
    assert list(drawn.columns) == list(ood.COLUMNS)
    assert sorted(p.name for p in (tmp_path / "ood").iterdir()) == sorted(
        [*drawn["file"], "labels.csv", "not_digits"])
    for (part, draw), rows in drawn.groupby(["part", "draw"]):
        assert len(rows) == count and (rows["condition"].value_counts() == 2).all()
    assert set(drawn["part"]) == set(PARTS) and set(drawn["draw"]) == {1, 2}
    assert set(drawn["polarity"]) == {"dark_on_light", "light_on_dark"}
    for row in drawn.itertuples():
        with Image.open(tmp_path / "ood" / row.file) as image:
            if row.condition == "tight":  # cropped out of a canvas of that size
                assert max(image.size) <= int(row.size)
            else:
                assert image.size == (int(row.size), int(row.size))
            assert (image.format == "JPEG") == (row.condition in ("jpeg", "photo"))
            assert (image.mode == "RGB") == (row.condition in ood.PHOTO_CONDITIONS)
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
        if row.condition in ood.PHOTO_CONDITIONS:  # a lamp may darken the paper's edges
            assert row.polarity == "dark_on_light"
        elif row.condition != "tight":  # a digit cropped tight may be more ink than paper
            border = np.median(np.concatenate([pixels[0], pixels[-1]]))
            assert (border > 127) == (row.polarity == "dark_on_light")
        assert load_digit(tmp_path / "ood" / row.file).shape == (28, 28)


@pytest.mark.slow  # draws all 1,797 UCI digits: 14 s
def test_the_parts_share_no_source_digit_and_labels_follow_the_source(tmp_path):
    ood.build(tmp_path / "ood", None, draws=1, seed=3, not_digits=1)
    drawn = read_labels(tmp_path / "ood")
    tuning, reporting = (set(read_labels(tmp_path / "ood", part)["source"]) for part in PARTS)
    assert not tuning & reporting
    assert len(tuning) == ood.TUNING_DIGITS and len(tuning | reporting) == ood.UCI_DIGITS
    assert max(tuning) < min(reporting)  # the fixed rule: scikit-learn's first 597
    labels = ood.source_digits()[1]
    assert (drawn["digit"] == labels[drawn["source"]]).all()


def test_seed_count_and_draws_choose_the_set_and_a_rebuild_replaces_it_whole(tmp_path):
    ood.build(tmp_path / "a", 12, draws=2, seed=0, not_digits=2)
    ood.build(tmp_path / "b", 12, draws=2, seed=0, not_digits=2)
    ood.build(tmp_path / "c", 12, draws=2, seed=1, not_digits=2)
    files = sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_file())
    assert all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
               for name in files)
    assert (tmp_path / "a" / "labels.csv").read_text() != (tmp_path / "c" / "labels.csv").read_text()
    first, second = (read_labels(tmp_path / "a").query(f"draw == {n}") for n in (1, 2))
    assert first["source"].tolist() != second["source"].tolist()  # each draw its own stream

    (tmp_path / "a" / "stray.png").write_bytes(b"left over")
    assert ood.build(tmp_path / "a", 5, draws=1, seed=0, not_digits=1) == 10
    assert len(list((tmp_path / "a").iterdir())) == 10 + 2  # and labels.csv, not_digits/
    assert not list(tmp_path.glob(".a.*"))  # no temporary folder left behind


def test_scan_conditions_look_like_their_names():
    rng = np.random.default_rng(0)
    digit = ood.source_digits()[0][0]

    def pixels(condition):
        return np.asarray(ood.scan(digit, 96, True, condition, rng), dtype=np.float32)

    clean, faint, noisy, blurred = (pixels(c) for c in ("none", "low_contrast", "noise", "blur"))
    assert np.ptp(faint) < 0.3 * 255 < 0.6 * 255 < np.ptp(clean)
    assert np.std(noisy[:8, :8]) > 5 > np.std(clean[:8, :8])

    def steepest_edge(image):  # as a fraction of the ink's contrast
        return np.abs(np.diff(image, axis=1)).max() / np.ptp(image)

    assert steepest_edge(blurred) < 0.75 * steepest_edge(clean)

    for seed in range(20):
        tight = np.asarray(ood.scan(digit, 200, True, "tight", np.random.default_rng(seed)))
        paper = np.median(np.concatenate([tight[0], tight[-1], tight[:, 0], tight[:, -1]]))
        rows, columns = np.nonzero(tight < paper - 10)  # the digit's ink
        margins = [rows.min(), tight.shape[0] - 1 - rows.max(),
                   columns.min(), tight.shape[1] - 1 - columns.max()]
        assert max(margins) <= 0.02 * max(tight.shape) + 1, margins


def photo(condition, seed=0):
    image, _ = ood.photo(ood.source_digits()[0][0], 200, condition, np.random.default_rng(seed))
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_photo_conditions_look_like_their_names():
    plain = photo("off_centre")
    paper = np.median(plain.reshape(-1, 3), axis=0)
    # Ruled paper: rows of another colour across the whole width; squared: columns too.
    ruled = photo("ruled")
    rows_unlike_paper = (np.abs(ruled - paper).sum(axis=2) > 30).all(axis=1)
    assert rows_unlike_paper.sum() >= 2
    squared = photo("squared")
    assert (np.abs(squared - paper).sum(axis=2) > 30).all(axis=0).sum() >= 2
    # A lamp: the paper's brightness falls by a third or more across the page.
    shadow = photo("shadow").mean(axis=2)
    corners = [shadow[:10, :10], shadow[:10, -10:], shadow[-10:, :10], shadow[-10:, -10:]]
    brightest, darkest = max(np.median(c) for c in corners), min(np.median(c) for c in corners)
    assert darkest < 0.8 * brightest
    # Coloured ink or paper: some draw has channels apart.
    assert any(np.abs(photo("colour", seed).std(axis=2)).max() > 20 for seed in range(4))
    # Off centre: the ink's box is at most 40% of the side.
    rows, columns = np.nonzero(np.abs(plain - paper).sum(axis=2) > 60)
    assert max(np.ptp(rows), np.ptp(columns)) <= 0.4 * 200


# The JPEG standard's luminance quantization table (ITU-T T.81, Annex K), which libjpeg scales
# by quality: 5000 / q below 50, 200 - 2q from there.
LUMINANCE = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16,
                      24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109,
                      103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120,
                      101, 72, 92, 95, 98, 112, 100, 103, 99])


def jpeg_quality(image):
    """The quality whose scaled standard table the file's luminance table is."""
    table = np.array(image.quantization[0])
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        if np.array_equal(table, np.clip((LUMINANCE * scale + 50) // 100, 1, 255)):
            return quality
    return None


def test_drawn_jpegs_keep_the_quality_they_were_drawn_at(tmp_path):
    ood.build(tmp_path / "ood", 3 * len(ood.CONDITIONS), draws=1, seed=0, not_digits=12)
    drawn = read_labels(tmp_path / "ood")
    qualities = {"jpeg": set(), "photo": set()}
    for row in drawn[drawn["condition"].isin(qualities)].itertuples():
        with Image.open(tmp_path / "ood" / row.file) as image:
            qualities[row.condition].add(jpeg_quality(image))
    assert qualities["jpeg"] <= set(range(20, 50)) and len(qualities["jpeg"]) > 1
    assert qualities["photo"] <= set(range(60, 86)) and len(qualities["photo"]) > 1


def test_not_digits_are_drawn_for_each_part_draw_and_kind_and_refused(tmp_path):
    each = len(ood.CONDITIONS)
    ood.build(tmp_path / "ood", 1, draws=2, seed=0, not_digits=each)
    found = read_not_digits(tmp_path / "ood")
    assert (found.groupby(["part", "draw", "kind"]).size() == each).all()
    assert len(found) == each * 2 * len(PARTS) * len(ood.NOT_DIGIT_KINDS)
    assert set(found.query("kind == 'scribble'")["condition"]) == set(ood.CONDITIONS)
    assert "tight" not in set(found.query("kind == 'blank'")["condition"])
    refusals = {}
    for row in found.itertuples():
        try:
            load_digit(tmp_path / "ood" / row.file)
            refusals.setdefault(row.kind, []).append(None)
        except ImageError as error:
            refusals.setdefault(row.kind, []).append(str(error))
    pairs = refusals["pair"]
    assert sum(reason == "no single digit found: 2 separate marks side by side"
               for reason in pairs) >= 0.9 * len(pairs)
    assert sum(reason is not None for reason in refusals["blank"]) >= 0.5 * len(refusals["blank"])
