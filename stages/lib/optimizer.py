"""The optimizer and its learning-rate schedule, from params.yaml's train section. Import it
after stages.lib.backend.use(): it imports Keras."""

import keras


def learning_rate(train, steps_per_epoch):
    """The optimizer's learning rate, or a Keras schedule of it stepped by the optimizer's
    iterations, so it is saved with the model and a resumed run continues it."""
    peak = train["optimizer"]["learning_rate"]
    if train["lr_schedule"] == "cosine":
        warmup_steps = round(train["lr_warmup_epochs"] * steps_per_epoch)
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=train["epochs"] * steps_per_epoch - warmup_steps,
            warmup_target=peak, warmup_steps=warmup_steps,
        )
    if train["lr_decay"] != 1:
        return keras.optimizers.schedules.ExponentialDecay(
            peak, decay_steps=steps_per_epoch, decay_rate=train["lr_decay"], staircase=True
        )
    return peak


def build_optimizer(train, steps_per_epoch):
    """A Keras optimizer from {name: ..., argument: value, ...} and the learning-rate schedule."""
    arguments = {key: value for key, value in train["optimizer"].items() if key != "name"}
    arguments["learning_rate"] = learning_rate(train, steps_per_epoch)
    return keras.optimizers.get({"class_name": train["optimizer"]["name"], "config": arguments})
