"""Reads MNIST's IDX files (gzip-compressed or not), refusing any that is malformed."""

import gzip
import struct
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # unsigned bytes, 1 dimension
IMAGE_SHAPE = (28, 28)


class IdxError(ValueError):
    """An IDX file that is not what MNIST's format promises."""


def _read_bytes(path):
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError) as error:
        raise IdxError(f"{path}: cannot read: {error}") from None


def _parse(path, magic, dimensions):
    data = _read_bytes(path)
    header_size = 4 + 4 * dimensions
    if len(data) < header_size:
        raise IdxError(f"{path}: truncated header ({len(data)} bytes)")
    found_magic, *shape = struct.unpack(f">{1 + dimensions}i", data[:header_size])
    if found_magic != magic:
        raise IdxError(f"{path}: magic number {found_magic}, expected {magic}")
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise IdxError(
            f"{path}: {len(data)} bytes, but its header {tuple(shape)} promises {expected_size}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_images(path):
    """Return the images of an IDX3 file as a uint8 array of shape (N, 28, 28)."""
    images = _parse(path, IMAGES_MAGIC, 3)
    if images.shape[1:] != IMAGE_SHAPE:
        raise IdxError(f"{path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    return images


def read_labels(path):
    """Return the labels of an IDX1 file as a uint8 array of shape (N,), each in 0-9."""
    labels = _parse(path, LABELS_MAGIC, 1)
    if labels.size and labels.max() > 9:
        raise IdxError(f"{path}: label {labels.max()} out of range 0-9")
    return labels


def read_pair(images_path, labels_path):
    """Read an images file and its labels file, checking that their counts agree."""
    images, labels = read_images(images_path), read_labels(labels_path)
    if len(images) != len(labels):
        raise IdxError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return images, labels
