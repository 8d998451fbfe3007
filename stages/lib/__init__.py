"""The library the stages and commands share: params, files, the model, the backends."""
