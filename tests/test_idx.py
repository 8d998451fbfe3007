import gzip

import yaml

import numpy as np
import pytest

from stages.lib.idx import IdxError, read_images, read_labels, read_pair
from tests.conftest import idx_bytes, project_params, run_stage, synthetic_digits, write_gz, write_mirror


@pytest.fixture
def digits():
    return synthetic_digits(12, seed=0)


def test_reads_gzipped_and_plain_files(tmp_path, digits):
    images, labels = digits
    write_gz(tmp_path / "images.gz", idx_bytes(images, 2051))
    (tmp_path / "labels").write_bytes(idx_bytes(labels, 2049))

    read_back_images, read_back_labels = read_pair(tmp_path / "images.gz", tmp_path / "labels")

    assert read_back_images.dtype == np.uint8 and read_back_images.shape == (12, 28, 28)
    np.testing.assert_array_equal(read_back_images, images)
    np.testing.assert_array_equal(read_back_labels, labels)


@pytest.mark.parametrize(
    "content, reader, message",
    [
        (idx_bytes(np.zeros((2, 28, 28)), 2049), read_images, "magic number 2049, expected 2051"),
        (idx_bytes(np.zeros(2), 2051), read_labels, "magic number 2051, expected 2049"),
        (idx_bytes(np.zeros((2, 28, 28)), 2051)[:-1], read_images, "but its header (2, 28, 28) promises"),
        (idx_bytes(np.zeros((2, 28, 28)), 2051) + b"\0", read_images, "promises 1584"),
        (idx_bytes(np.zeros((2, 28, 28)), 2051)[:10], read_images, "truncated header"),
        (idx_bytes(np.zeros((2, 32, 32)), 2051), read_images, "images are 32x32, expected 28x28"),
        (idx_bytes(np.array([1, 10, 3]), 2049), read_labels, "label 10 out of range 0-9"),
    ],
    ids=["labels-magic", "images-magic", "truncated", "trailing-bytes", "short-header", "32x32", "label-10"],
)
def test_malformed_file_is_a_clear_error_naming_it(tmp_path, content, reader, message):
    path = write_gz(tmp_path / "bad-idx.gz", content)
    with pytest.raises(IdxError) as error:
        reader(path)
    assert str(error.value).startswith(str(path))
    assert message in str(error.value)


def test_truncated_gzip_names_the_file(tmp_path, digits):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(digits[0], 2051))[:-20])
    with pytest.raises(IdxError, match=f"^{path}: cannot read"):
        read_images(path)


def test_image_and_label_counts_must_agree(tmp_path, digits):
    images, labels = digits
    write_gz(tmp_path / "images.gz", idx_bytes(images, 2051))
    write_gz(tmp_path / "labels.gz", idx_bytes(labels[:-1], 2049))
    with pytest.raises(IdxError, match="11 labels for 12 images"):
        read_pair(tmp_path / "images.gz", tmp_path / "labels.gz")


def test_preprocess_stage_names_the_malformed_file_and_writes_nothing(tmp_path):
    write_mirror(tmp_path / "data/raw")
    bad = tmp_path / "data/raw/t10k-labels-idx1-ubyte.gz"
    write_gz(bad, idx_bytes(np.array([3, 12, 5]), 2049))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project_params()))

    result = run_stage("preprocess", tmp_path, check=False)

    assert result.returncode == 1
    assert result.stderr.strip() == f"preprocess: data/raw/{bad.name}: label 12 out of range 0-9"
    assert not (tmp_path / "data/prepared").exists()


@pytest.mark.parametrize(("changes", "message"), [
    ({"train_limit": 301},
     "preprocess: preprocess.train_limit: 301 is more than the 300 training images in data/raw"),
    ({"validation_split": 0.001},
     "preprocess: preprocess.validation_split: 0.001 of 300 images holds out 0, "
     "leaving 300 to train on"),
    ({"train_limit": 2, "validation_split": 0.9},
     "preprocess: preprocess.validation_split: 0.9 of 2 images holds out 2, leaving 0 to train on"),
])
def test_preprocess_refuses_a_slice_the_data_cannot_give(tmp_path, changes, message):
    write_mirror(tmp_path / "data/raw")  # 300 training images
    params = project_params()
    params["preprocess"].update(changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    result = run_stage("preprocess", tmp_path, check=False)

    assert result.returncode == 1 and result.stderr.strip() == message
    assert not (tmp_path / "data/prepared").exists()
