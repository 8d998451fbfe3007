"""Stage train: fit the CNN on the prepared images, logging every epoch with DVCLive.

Writes data/model/model.keras and data/train_log/ (DVCLive: per-epoch TSVs, and metrics.json
with the last epoch and, under `run`, the record of what really ran). Both are DVC-cached, so a
teammate's `dvc pull --run-cache` restores a run; the evaluate stage publishes the log to git.
After each epoch the model is saved to data/resume/, so a killed run resumes where it stopped.
The train section of params.yaml is `Params` below; Keras is imported once train.backend is set.
"""

import sys
from typing import Annotated, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from stages.lib import backend, params
from stages.lib.splits import MODEL_PATH, PREPARED_DIR, load_split

TRAIN_LOG_DIR = "data/train_log"  # DVCLive's folder: metrics.json and plots/metrics/
IMAGE_SIDE = 28  # MNIST's images are 28x28; the model's layers must fit in them.


class OptimizerArguments(params.Section):
    """What every Keras optimizer takes: weight decay, and an exponential moving average of the
    weights that replaces them when training ends."""

    learning_rate: float = Field(gt=0)
    weight_decay: Optional[float] = Field(None, ge=0)
    use_ema: bool = False
    ema_momentum: float = Field(0.99, ge=0, lt=1)


class Adadelta(OptimizerArguments):
    name: Literal["adadelta"]
    rho: float = Field(0.95, ge=0)
    epsilon: float = Field(1e-7, ge=0)


class Adam(OptimizerArguments):
    name: Literal["adam"]
    beta_1: float = Field(0.9, ge=0)
    beta_2: float = Field(0.999, ge=0)
    epsilon: float = Field(1e-7, ge=0)


class RMSprop(OptimizerArguments):
    name: Literal["rmsprop"]
    rho: float = Field(0.9, ge=0)
    momentum: float = Field(0.0, ge=0)
    epsilon: float = Field(1e-7, ge=0)


class SGD(OptimizerArguments):
    name: Literal["sgd"]
    momentum: float = Field(0.0, ge=0)


Optimizer = Annotated[Union[Adadelta, Adam, RMSprop, SGD], Field(discriminator="name")]


class Convolution(params.Section):
    """Keras Conv2D's own argument names."""

    filters: int = Field(ge=1)
    kernel_size: int = Field(ge=1)
    strides: int = Field(1, ge=1)
    padding: Literal["valid", "same"] = "valid"


class MaxPool(params.Section):
    max_pool: int = Field(ge=1)


class Dropout(params.Section):
    dropout: float = Field(ge=0, lt=1)


def _conv_stack_kind(item):
    """The tag of a conv_stack item (in angle brackets, so error messages leave it out)."""
    if not isinstance(item, dict):
        return None
    return next((f"<{key}>" for key in ("max_pool", "dropout") if key in item), "<convolution>")


ConvStackItem = Annotated[
    Union[Annotated[Convolution, Tag("<convolution>")], Annotated[MaxPool, Tag("<max_pool>")],
          Annotated[Dropout, Tag("<dropout>")]],
    Discriminator(_conv_stack_kind, custom_error_type="conv_stack_item",
                  custom_error_message="must be a mapping: a convolution {filters, kernel_size, "
                                       "strides, padding}, {max_pool: size} or {dropout: rate}"),
]


class Augment(params.Section):
    rotation: float = Field(ge=0, le=180, description="largest random rotation, degrees either way")
    shift: float = Field(ge=0, lt=1,
                         description="largest random shift, fraction of the image's side")
    zoom: float = Field(ge=0, lt=1, description="largest random zoom in or out, fraction")
    thickness: float = Field(ge=0, le=1, description="strokes up to this fraction of a 3x3 "
                                                     "dilation thicker, or erosion thinner")
    elastic: float = Field(ge=0, le=4, description="pixels: the largest displacement of a smooth "
                                                   "random distortion")
    blur: float = Field(ge=0, le=2, description="pixels: the largest Gaussian blur (sigma)")
    light: float = Field(ge=0, le=1, description="the greyest paper, its light uneven "
                                                 "(0: black, 1: white)")
    noise: float = Field(ge=0, le=0.5, description="the largest share of pixels turned black "
                                                   "or white, and the largest grain (sigma)")
    erase: float = Field(ge=0, lt=1, description="the largest share of the image painted one "
                                                 "random grey")


class Architecture(params.Section):
    conv_stack: list[ConvStackItem] = Field(
        description="the convolution stack, in order",
        json_schema_extra={"allowed": "a list of convolutions {filters, kernel_size, strides, "
                                      "padding}, {max_pool: size} and {dropout: rate}"})
    batch_norm: bool = Field(description="batch normalization between each convolution or dense "
                                         "layer and its activation")
    dense_units: list[Annotated[int, Field(ge=1)]] = Field(
        description="units of each hidden dense layer")
    dropout: float = Field(ge=0, lt=1, description="dropout rate before each dense layer")
    normalize_ink: bool = Field(description="the paper brought to black and the strongest ink "
                                            "to white inside the model, in training and "
                                            "prediction alike")
    activation: Literal["relu", "elu", "gelu", "selu", "silu", "tanh", "sigmoid"] = Field(
        description="activation of the convolutions and hidden dense layers")

    @field_validator("conv_stack")
    @classmethod
    def fits_the_image(cls, conv_stack):
        """Every convolution and pooling must find at least one pixel: name the first that
        does not."""
        side = IMAGE_SIDE
        for index, item in enumerate(conv_stack):
            if isinstance(item, Dropout):
                continue
            if isinstance(item, MaxPool):
                side, needed = side // item.max_pool, item.max_pool
            elif item.padding == "same":
                side, needed = -(-side // item.strides), 1
            else:
                needed = item.kernel_size
                side = (side - item.kernel_size) // item.strides + 1
            if side < 1:
                raise ValueError(
                    f"item {index} ({item.model_dump(exclude_unset=True)}) needs a "
                    f"{needed}x{needed} feature map; the layers before it leave less of a "
                    f"{IMAGE_SIDE}x{IMAGE_SIDE} image")
        return conv_stack


class Params(params.Section):
    backend: Literal["tensorflow", "jax"] = Field(
        description="Keras' backend: tensorflow (fastest on CPUs) or jax (for GPUs)")
    seed: int = params.Seed("every random stream of training: batch order, dropout, augmentation")
    epochs: int = Field(ge=1, description="passes over the training images")
    batch_size: int = Field(ge=1, description="images a training step")
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = Field(
        description="Keras mixed-precision policy; mixed_bfloat16 falls back to float32 where "
                    "the CPU lacks bfloat16")
    xla: bool = Field(description="compile training steps with XLA (TensorFlow; JAX always "
                                  "compiles)")
    distribute: Literal["none", "mirrored"] = Field(
        description="none, or mirrored: each batch split across the devices (GPUs, or CPU "
                    "devices)")
    optimizer: Optimizer = Field(
        description="the Keras optimizer and its arguments",
        json_schema_extra={"allowed": "{name: adadelta, adam, rmsprop or sgd; learning_rate; "
                                      "that Keras optimizer's own arguments; weight_decay, "
                                      "use_ema, ema_momentum}"})
    lr_schedule: Literal["exponential", "cosine"] = Field(
        description="exponential (x lr_decay after every epoch) or cosine (warm-up, then half a "
                    "cosine to 0)")
    lr_decay: float = Field(gt=0, le=1, description="learning-rate factor after every epoch "
                                                    "(exponential schedule)")
    lr_warmup_epochs: float = Field(ge=0, description="epochs of linear warm-up (cosine schedule)")
    label_smoothing: float = Field(ge=0, lt=1, description="targets of 1 - s for the right digit, "
                                                           "s / 10 spread over all")
    test_time_shift: int = Field(ge=0, le=3, description="pixels: the saved model averages each "
                                                         "image's probabilities with those of "
                                                         "four copies moved this far (0: off)")
    augment: Augment
    model: Architecture

    @field_validator("lr_decay")
    @classmethod
    def decay_is_exponential(cls, lr_decay, info: ValidationInfo):
        if info.data.get("lr_schedule") == "cosine" and lr_decay != 1:
            raise ValueError("applies to lr_schedule exponential only; cosine falls to 0 by itself")
        return lr_decay

    @field_validator("lr_warmup_epochs")
    @classmethod
    def warmup_is_cosine(cls, warmup, info: ValidationInfo):
        if info.data.get("lr_schedule") == "exponential" and warmup:
            raise ValueError("applies to lr_schedule cosine only")
        if "epochs" in info.data and warmup >= info.data["epochs"]:
            raise ValueError(f"must be < train.epochs ({info.data['epochs']})")
        return warmup


def main():
    train = params.load("train", Params)
    backend.use(train["backend"])
    parts = backend.parts()
    import keras

    from stages.lib import checkpoint, provenance
    from stages.lib.atomic import atomic_path
    from stages.lib.model import build_model, compile_model, model_inputs, with_test_time_shifts
    from stages.lib.training import (Checkpoint, EpochSeeds, EpochTimer, StopOnSignal, fit,
                                     steps_per_epoch, training_batches)

    gpus = parts.gpus()
    if refusal := parts.unsupported(train, gpus):
        raise SystemExit(refusal)
    stop = StopOnSignal()
    train_images, train_labels = model_inputs(*load_split("train"))
    validation_images, validation_labels = model_inputs(*load_split("validation"))
    validation_data = (validation_images, validation_labels) if len(validation_images) else None

    # Same params, same machine, same metrics.
    parts.seed_everything(train["seed"])
    deterministic = parts.deterministic_ops(train["xla"])
    precision = provenance.precision_policy(train["precision"], gpus)
    keras.mixed_precision.set_global_policy(precision)

    scope, replicas = parts.distribution(train["distribute"])
    shards = replicas if parts.EQUAL_SHARDS else 1
    steps = steps_per_epoch(len(train_images), train["batch_size"], shards)
    run_fingerprint = checkpoint.fingerprint(
        train, [PREPARED_DIR / "train.npz", PREPARED_DIR / "validation.npz"]
    )
    if train["distribute"] != "none":
        print(f"train: {train['distribute']} across {replicas} replicas")
    # Model and fit both inside the distribution's scope: under JAX, Keras splits each batch
    # across the devices only when fit runs in it.
    with scope:
        resumed = checkpoint.load(run_fingerprint)
        if resumed:
            model, history = resumed
            print(f"train: resuming after epoch {len(history)} of {train['epochs']} "
                  f"from {checkpoint.RESUME_DIR}")
        else:
            model, history = compile_model(build_model(train), train, steps), []
        # Set after loading too: a resumed model would otherwise keep the compile-time choice.
        model.jit_compile = parts.jit_compile(train["xla"])
        model.summary()
        if train["xla"] and not model.jit_compile:
            print("train: Keras cannot compile this model with XLA; recorded as xla.used: false")
        run_record = {
            "backend": train["backend"],
            "precision": {"requested": train["precision"], "used": precision},
            "xla": {"requested": train["xla"], "used": bool(model.jit_compile)},
            "op_determinism": deterministic,
            "distribute": {"requested": train["distribute"], "replicas": replicas},
            "device": provenance.device(gpus),
            "versions": provenance.versions(),
        }
        fit(model, history, train, live_dir=TRAIN_LOG_DIR, run_record=run_record,
            batches=training_batches(train_images, train_labels, train["batch_size"],
                                     train["seed"], len(history), train["epochs"], shards),
            steps_per_epoch=steps, validation_data=validation_data,
            callbacks=[stop, EpochSeeds(train["seed"]),
                       EpochTimer(len(train_images), history),
                       Checkpoint(history, run_fingerprint)])
    if stop.received:
        print(f"\ntrain: interrupted after {len(history)} of {train['epochs']} epochs; "
              f"`dvc repro` resumes from there ({checkpoint.RESUME_DIR})", file=sys.stderr)
        sys.exit(128 + stop.received)

    with atomic_path(MODEL_PATH) as temporary:
        with_test_time_shifts(model, train["test_time_shift"]).save(temporary)
    checkpoint.clear()
    print(f"train: model saved to {MODEL_PATH}")


if __name__ == "__main__":
    main()
