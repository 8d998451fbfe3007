"""How much each augmentation blurs MNIST's training digits: Keras' three layers against RandomAffine.

Every bilinear resampling averages neighbouring pixels, so ink and paper turn grey. Counts the
grey pixels (strictly between 0.05 and 0.95) and the pixel standard deviation of the first N
training digits, plain, after RandomRotation + RandomTranslation + RandomZoom (three
resamplings), and after stages.lib.augmentation.RandomAffine (one), both at the strong recipe's 10 degrees,
10% and 10%. Needs data/prepared/ (run `dvc repro preprocess` first).

    python benchmark/augmentation_blur.py --digits 10000
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.lib import backend  # noqa: E402

backend.use(backend.available())
import keras  # noqa: E402

from stages.lib.augmentation import RandomAffine  # noqa: E402
from stages.lib.model import model_inputs  # noqa: E402
from stages.lib.splits import load_split  # noqa: E402

ROTATION, SHIFT, ZOOM = 10, 0.1, 0.1


def describe(name, images, plain):
    grey = np.mean((images > 0.05) & (images < 0.95))
    print(f"{name}: grey pixels {grey:.1%}, pixel s.d. {images.std():.3f}, "
          f"ink {images.sum() / plain.sum():.3f} of the plain digits'")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=10000)
    args = parser.parse_args()
    images, labels = load_split("train")
    digits = model_inputs(images[: args.digits], labels[: args.digits])[0]

    keras_layers = keras.Sequential([
        keras.layers.RandomRotation(ROTATION / 360, fill_mode="constant", seed=1),
        keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="constant", seed=2),
        keras.layers.RandomZoom(ZOOM, fill_mode="constant", seed=3),
    ])
    one_layer = RandomAffine(ROTATION, SHIFT, ZOOM, seed=1)
    describe("plain", digits, digits)
    for name, layers in (("Keras' three layers", keras_layers), ("RandomAffine", one_layer)):
        describe(name, keras.ops.convert_to_numpy(layers(digits, training=True)), digits)


if __name__ == "__main__":
    main()
