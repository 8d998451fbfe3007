"""The pipeline's stages, one module each, run as `python -m stages.<name>`."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries each stage's own output;
# set before any stage imports TensorFlow. Warnings and errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
