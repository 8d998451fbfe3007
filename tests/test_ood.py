"""The out-of-distribution set: digits that are not MNIST, drawn as users' image files."""

import numpy as np
from PIL import Image

from stages import ood
from stages.lib.drawn import read_labels
from stages.lib.prepare import load_digit


def test_build_draws_every_kind_of_file_with_its_label(tmp_path):
    assert ood.build(tmp_path / "ood", 48, seed=0) == 48
    drawn = read_labels(tmp_path / "ood")
    assert list(drawn.columns) == list(ood.COLUMNS) and len(drawn) == 48
    assert sorted(p.name for p in (tmp_path / "ood").iterdir()) == sorted([*drawn["file"], "labels.csv"])
    assert set(drawn["trouble"]) == set(ood.TROUBLES)
    assert set(drawn["polarity"]) == {"dark_on_light", "light_on_dark"}
    assert set(drawn["size"].astype(int)) == set(ood.SIZES)
    for row in drawn.itertuples():
        with Image.open(tmp_path / "ood" / row.file) as image:
            assert image.size == (int(row.size), int(row.size))
            pixels = np.asarray(image, dtype=np.float32)
        border = np.median(np.concatenate([pixels[0], pixels[-1]]))
        assert (border > 127) == (row.polarity == "dark_on_light")
        assert load_digit(tmp_path / "ood" / row.file).shape == (28, 28)


def test_labels_are_the_source_digits_in_the_seeded_order(tmp_path):
    ood.build(tmp_path / "ood", 30, seed=3)
    labels = ood.source_digits()[1]
    order = np.random.default_rng(3).permutation(len(labels))[:30]
    assert read_labels(tmp_path / "ood")["digit"].tolist() == labels[order].tolist()


def test_seed_and_count_choose_the_set_and_a_rebuild_replaces_it_whole(tmp_path):
    ood.build(tmp_path / "a", 12, seed=0)
    ood.build(tmp_path / "b", 12, seed=0)
    ood.build(tmp_path / "c", 12, seed=1)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
               for name in files)
    assert (tmp_path / "a" / "labels.csv").read_text() != (tmp_path / "c" / "labels.csv").read_text()

    (tmp_path / "a" / "stray.png").write_bytes(b"left over")
    assert ood.build(tmp_path / "a", 5, seed=0) == 5
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == files[:5] + ["labels.csv"]
    assert not list(tmp_path.glob(".a.*"))  # no temporary folder left behind
    assert ood.build(tmp_path / "all", None, seed=0) == 1797


def test_troubles_look_like_their_names(tmp_path):
    rng = np.random.default_rng(0)
    digit = ood.source_digits()[0][0]

    def pixels(trouble):
        return np.asarray(ood.draw(digit, 96, True, trouble, rng), dtype=np.float32)

    clean, faint, noisy, blurred = (pixels(t) for t in ("none", "low_contrast", "noise", "blur"))
    assert np.ptp(faint) < 0.3 * 255 < 0.6 * 255 < np.ptp(clean)
    assert np.std(noisy[:8, :8]) > 5 > np.std(clean[:8, :8])

    def steepest_edge(image):  # as a fraction of the ink's contrast
        return np.abs(np.diff(image, axis=1)).max() / np.ptp(image)

    assert steepest_edge(blurred) < 0.75 * steepest_edge(clean)
