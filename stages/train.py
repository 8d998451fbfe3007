"""Stage train: fit the CNN on the prepared images, logging every epoch with DVCLive.

Writes data/model/model.keras and reports/train/ (per-epoch TSVs and the last epoch's metrics).
"""

from pathlib import Path

import keras
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from stages import params
from stages.atomic import atomic_path
from stages.data import load_split, model_inputs
from stages.model import build_model, build_optimizer

MODEL_PATH = Path("data/model/model.keras")
LIVE_DIR = Path("reports/train")


def main():
    train = params.load("train")
    train_images, train_labels = model_inputs(*load_split("train"))
    validation_images, validation_labels = model_inputs(*load_split("validation"))
    validation_data = (validation_images, validation_labels) if len(validation_images) else None

    # Same params, same machine, same metrics: seeds Python, NumPy and TensorFlow at once.
    keras.utils.set_random_seed(train["seed"])
    tf.config.experimental.enable_op_determinism()

    model = build_model(train["model"])
    model.compile(
        loss="categorical_crossentropy",
        optimizer=build_optimizer(train["optimizer"]),
        metrics=["accuracy"],
    )
    model.summary()

    # dvcyaml=False keeps dvc.yaml ours; save_dvc_exp=False leaves experiments to `dvc exp run`.
    with Live(str(LIVE_DIR), dvcyaml=False, save_dvc_exp=False) as live:
        model.fit(
            train_images,
            train_labels,
            batch_size=train["batch_size"],
            epochs=train["epochs"],
            validation_data=validation_data,
            callbacks=[DVCLiveCallback(live=live)],
        )

    with atomic_path(MODEL_PATH) as temporary:
        model.save(temporary)
    print(f"train: model saved to {MODEL_PATH}")


if __name__ == "__main__":
    main()
