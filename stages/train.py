"""Stage train: fit the CNN on the prepared images, logging every epoch with DVCLive.

Writes data/model/model.keras and data/train_log/ (DVCLive: per-epoch TSVs, and metrics.json
with the last epoch and, under `run`, the record of what really ran). Both are DVC-cached, so a
teammate's `dvc pull --run-cache` restores a run; the evaluate stage publishes the log to git.
After each epoch the model is saved to data/resume/, so a killed run resumes where it stopped.
With train.ensemble, the members are trained one after the other, their epochs logged in one
sequence, and saved as one model that averages them.
The train section of params.yaml is `Params` below; Keras is imported once train.backend is set.
"""

import sys
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union

from omegaconf import OmegaConf
from pydantic import (Discriminator, Field, StringConstraints, Tag, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from stages.lib import backend, params, seeds
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


# The whole run's keys, which an ensemble's members share.
RUN_KEYS = ("backend", "seed", "precision", "xla", "distribute", "ensemble")
MemberName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]


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
    ensemble: dict[MemberName, dict[str, Any]] = Field(
        description="further models, each trained after the one this section describes, from "
                    "seed streams of its own, and averaged with it in the saved model: each a "
                    "name and the keys of train it changes, merged key by key as -S merges them",
        json_schema_extra={"allowed": "a mapping of names (lower-case letters, digits, _) to "
                                      "changes of train's keys, not backend, seed, precision, xla, "
                                      "distribute or ensemble; {} for one model"})

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


    @model_validator(mode="wrap")
    @classmethod
    def members_are_models(cls, values, handler):
        """Each member must be a model that train could describe by itself; its errors name the
        member's key."""
        validated = handler(values)
        for name, changes in values["ensemble"].items():
            where = ("ensemble", name)
            if shared := [key for key in RUN_KEYS if key in changes]:
                raise ValidationError.from_exception_data(cls.__name__, [{
                    "type": "extra_forbidden", "loc": (*where, shared[0]),
                    "input": changes[shared[0]]}])
            try:
                cls.model_validate(with_changes(values, changes))
            except ValidationError as error:
                raise params.placed_at(error, where) from None
        return validated


def with_changes(train, changes):
    """An ensemble member's train section: train without its ensemble, `changes` merged in as
    Hydra merges -S values (mappings key by key, lists whole)."""
    return OmegaConf.to_container(OmegaConf.merge({**train, "ensemble": {}}, changes))


def members(train):
    """(model name, train section) of each model the run trains, in order: the section's own,
    then train.ensemble's."""
    return [("mnist_cnn", {**train, "ensemble": {}}), *(
        (f"mnist_cnn_{name}", with_changes(train, changes))
        for name, changes in train["ensemble"].items())]


class Run(NamedTuple):
    """What every member's training shares."""

    train: dict  # the train section
    ensemble: list  # (model name, train section) of each member, from members()
    images: Any  # the training images and labels, model inputs
    labels: Any
    validation_data: Optional[tuple]  # (images, labels), or None without a validation part
    parts: Any  # the backend's parts (backend.parts())
    shards: int  # each batch is cut to a multiple of this
    fingerprint: str  # the resume state's (checkpoint.fingerprint)
    history: list  # every completed epoch's logs, all members' in order
    stop: Any  # the StopOnSignal callback


def member_model(run, index, resumed_model):
    """Member `index` as training starts or resumes it: compiled, with the run's XLA choice."""
    from stages.lib.model import build_model, compile_model
    from stages.lib.training import steps_per_epoch

    name, member = run.ensemble[index]
    model = resumed_model
    if model is None:
        run.parts.seed_everything(seeds.weights_seed(run.train["seed"], index))
        model = compile_model(build_model(member, name), member,
                              steps_per_epoch(len(run.images), member["batch_size"], run.shards))
    # Set after loading too: a resumed model would otherwise keep the compile-time choice.
    model.jit_compile = run.parts.jit_compile(run.train["xla"])
    model.summary()
    return model


def train_member(run, index, model, live, finished_probabilities):
    """Fits member `index` over its epochs that the history does not hold yet, logging each to
    `live`, and records it finished; returns False if a signal stopped it first. With
    `finished_probabilities` (a list; None scores the member alone, as Keras does), each epoch's
    validation is the ensemble's so far, and the member's probabilities are added to them."""
    from stages.lib import checkpoint
    from stages.lib.training import (Checkpoint, EnsembleValidation, EpochSeeds, EpochTimer, fit,
                                     steps_per_epoch, training_batches)

    _, member = run.ensemble[index]
    seed = run.train["seed"]
    first_epoch = len(run.history) - sum(done["epochs"] for _, done in run.ensemble[:index])
    ensemble_validation = []
    if finished_probabilities is not None:
        ensemble_validation = [EnsembleValidation(*run.validation_data, finished_probabilities,
                                                  member["test_time_shift"])]
    fit(model, member["epochs"], first_epoch, live,
        batches=training_batches(run.images, run.labels, member["batch_size"], seed, first_epoch,
                                 member["epochs"], run.shards, index),
        steps_per_epoch=steps_per_epoch(len(run.images), member["batch_size"], run.shards),
        validation_data=None if ensemble_validation else run.validation_data,
        callbacks=[run.stop, EpochSeeds(seed, index), EpochTimer(len(run.images), run.history),
                   *ensemble_validation, Checkpoint(run.history, run.fingerprint, index)])
    if run.stop.received:
        return False
    checkpoint.finish_member(model, run.history, run.fingerprint, index)
    if ensemble_validation:
        finished_probabilities.append(ensemble_validation[0].probabilities())
    return True


def main():
    train = params.load("train", Params)
    ensemble = members(train)
    backend.use(train["backend"])
    parts = backend.parts()
    import keras

    from stages.lib import checkpoint, provenance
    from stages.lib.atomic import atomic_path
    from stages.lib.model import averaged, model_inputs, with_test_time_shifts
    from stages.lib.training import StopOnSignal, log_record, saved_probabilities, training_log

    gpus = parts.gpus()
    for _, member in ensemble:
        if refusal := parts.unsupported(member, gpus):
            raise SystemExit(refusal)
    stop = StopOnSignal()
    images, labels = model_inputs(*load_split("train"))
    validation_images, validation_labels = model_inputs(*load_split("validation"))
    validation_data = (validation_images, validation_labels) if len(validation_images) else None

    # Same params, same machine, same metrics (with each member's seeds, set before it is built).
    deterministic = parts.deterministic_ops(train["xla"])
    precision = provenance.precision_policy(train["precision"], gpus)
    keras.mixed_precision.set_global_policy(precision)

    scope, replicas = parts.distribution(train["distribute"])
    run_fingerprint = checkpoint.fingerprint(
        train, [PREPARED_DIR / "train.npz", PREPARED_DIR / "validation.npz"]
    )
    total_epochs = sum(member["epochs"] for _, member in ensemble)
    if train["distribute"] != "none":
        print(f"train: {train['distribute']} across {replicas} replicas")
    # Models and fit all inside the distribution's scope: under JAX, Keras splits each batch
    # across the devices only when fit runs in it.
    with scope:
        resumed = checkpoint.load(run_fingerprint) or checkpoint.Resumed([], [], None)
        run = Run(train, ensemble, images, labels, validation_data, parts,
                  replicas if parts.EQUAL_SHARDS else 1, run_fingerprint, resumed.history, stop)
        if run.history:
            print(f"train: resuming after epoch {len(run.history)} of {total_epochs} from "
                  f"{checkpoint.RESUME_DIR}")
        run_record = {
            "backend": train["backend"],
            "precision": {"requested": train["precision"], "used": precision},
            "xla": {"requested": train["xla"], "used": parts.jit_compile(train["xla"])},
            "op_determinism": deterministic,
            "distribute": {"requested": train["distribute"], "replicas": replicas},
            "device": provenance.device(gpus),
            "versions": provenance.versions(),
            "members": len(ensemble),
        }
        finished = list(resumed.finished)
        # An ensemble's validation scores the ensemble so far, as it would be saved.
        finished_probabilities = None
        if validation_data is not None and len(ensemble) > 1:
            finished_probabilities = [
                saved_probabilities(model, member["test_time_shift"], validation_images)
                for model, (_, member) in zip(finished, ensemble)]
        with training_log(TRAIN_LOG_DIR, run.history) as live:
            for index in range(len(finished), len(ensemble)):
                model = member_model(
                    run, index, resumed.model if index == len(resumed.finished) else None)
                if train["xla"] and not model.jit_compile:
                    print(f"train: Keras cannot compile {ensemble[index][0]} with XLA; "
                          "recorded as xla.used: false")
                    run_record["xla"]["used"] = False
                if not train_member(run, index, model, live, finished_probabilities):
                    break
                finished.append(model)
            # Logged once the models are built: Keras may refuse XLA for one of them.
            log_record(live, run_record, "run")
    if stop.received:
        print(f"\ntrain: interrupted after {len(run.history)} of {total_epochs} epochs; "
              f"`dvc repro` resumes from there ({checkpoint.RESUME_DIR})", file=sys.stderr)
        sys.exit(128 + stop.received)

    with atomic_path(MODEL_PATH) as temporary:
        averaged([with_test_time_shifts(model, member["test_time_shift"])
                  for model, (_, member) in zip(finished, ensemble)]).save(temporary)
    checkpoint.clear()
    print(f"train: model saved to {MODEL_PATH}")


if __name__ == "__main__":
    main()
