"""Classify your own handwritten digits with a trained model, from any folder.

    mnist-predict [--model PATH] [--json] [--save-preprocessed DIR] IMAGE_OR_FOLDER...
    python -m stages.commands.predict ...          (the same, without installing)

Reads no params.yaml: any model file this project trained, on either backend, loads on the
backend chosen here (--backend, else KERAS_BACKEND, else TensorFlow where it is installed).
Images are prepared by stages/lib/prepare.py, as evaluate prepares the out-of-distribution set.
"""

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from stages.lib import backend
from stages.lib.prepare import ImageError, load_digit
from stages.lib.splits import MODEL_PATH

# The pipeline's model when none is named: beside this installed checkout, wherever the command runs.
PROJECT_MODEL = Path(__file__).resolve().parents[2] / MODEL_PATH
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
BATCH = 256  # digits a call: a folder of thousands of photos is classified in bounded memory


def image_files(path):
    """The file named, or the images in the folder named (sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [path]


def preprocessed_names(files):
    """A name in --save-preprocessed's folder for each input: its stem and .png, and -2, -3...
    after the stem of a later input whose name is taken (photos from two folders often share
    names such as IMG_0001.jpg)."""
    names, taken = [], set()
    for path in files:
        name, copy = f"{path.stem}.png", 1
        while name.lower() in taken:
            copy += 1
            name = f"{path.stem}-{copy}.png"
        taken.add(name.lower())
        names.append(name)
    return names


def add_model_options(parser):
    """--model and --backend, as mnist-predict and mnist-serve take them."""
    parser.add_argument("--model", type=Path, default=PROJECT_MODEL,
                        help="a .keras file (default: the pipeline's data/model/model.keras)")
    parser.add_argument("--backend", choices=backend.BACKENDS, default=None,
                        help="Keras' backend (default: KERAS_BACKEND, else tensorflow if installed)")


def require_model(path, command):
    """End `command` with one line when there is no model file, before any slow start-up."""
    if not path.is_file():
        sys.exit(f"{command}: no model at {path} (run `dvc repro train` or pass --model)")


def load_classifier(path, backend_name=None, verbose=False, command="predict"):
    """The model at path, loaded on the backend named (else the default one) and ready to answer
    at once; a file that is not a model this project can load ends `command` with one line."""
    # Imported only once there is something to classify: Keras and its backend take seconds.
    backend.use(backend_name or backend.available(), verbose=verbose)
    try:
        with backend.silenced_stderr(not verbose):
            from stages.lib.model import load_model

            model = load_model(path)
            # The first call builds the prediction function (a second or more): paid here, and a
            # model made for other inputs fails here rather than on the first image.
            model.predict_on_batch(np.zeros((1, 28, 28, 1), np.float32))
    except Exception as error:  # noqa: BLE001 (Keras raises many kinds for a bad file)
        sys.exit(f"{command}: {path}: not a model this project can load "
                 f"({type(error).__name__}: {str(error).splitlines()[0][:200]})")
    return model


def classify(model, digits):
    """The answer and top 3 for each prepared 28x28 digit. predict_on_batch rather than
    model.predict, whose set-up for each call costs more than the page's whole answer
    (docs/handwriting.md): the page answers one drawing at a time."""
    batches = [np.stack(digits[start : start + BATCH])[..., None]
               for start in range(0, len(digits), BATCH)]
    probabilities = np.concatenate([np.asarray(model.predict_on_batch(batch)) for batch in batches])
    answers = []
    for scores in probabilities:
        top3 = np.argsort(scores)[::-1][:3]
        answers.append({
            "digit": int(top3[0]),
            "probability": round(float(scores[top3[0]]), 4),
            "top3": [{"digit": int(d), "probability": round(float(scores[d]), 4)} for d in top3],
        })
    return answers


def seen_image(digit):
    """The 28x28 image the model saw, as 8-bit gray: what --save-preprocessed writes and the
    page shows."""
    return (digit * 255).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Classify handwritten digit images.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    add_model_options(parser)
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' log lines and warnings")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--save-preprocessed", type=Path, metavar="DIR",
                        help="write the 28x28 image the model saw, for each input")
    args = parser.parse_args(argv)
    require_model(args.model, "predict")
    if not args.verbose:
        warnings.simplefilter("ignore")

    digits, files, refused = [], [], []
    for named in args.images:
        found = image_files(named)
        if not found:
            refused.append({"file": named, "error": "no image files in this folder "
                                                    f"({', '.join(sorted(IMAGE_SUFFIXES))})"})
        for path in found:
            try:
                digits.append(load_digit(path))
                files.append(path)
            except ImageError as error:
                refused.append({"file": str(path), "error": str(error)})
    for refusal in refused:
        print(f"predict: {refusal['file']}: {refusal['error']}", file=sys.stderr)

    results = []
    if digits:
        model = load_classifier(args.model, args.backend, args.verbose)
        for path, digit, answer in zip(files, digits, classify(model, digits)):
            results.append({"file": str(path), **answer})
        if args.save_preprocessed:
            args.save_preprocessed.mkdir(parents=True, exist_ok=True)
            for result, digit, name in zip(results, digits, preprocessed_names(files)):
                result["preprocessed"] = str(args.save_preprocessed / name)
                Image.fromarray(seen_image(digit)).save(result["preprocessed"])

    if args.json:  # every input: those read, then those refused
        print(json.dumps(results + refused, indent=2))
    else:
        for result in results:
            others = ", ".join(f"{t['digit']} {t['probability']:.3f}" for t in result["top3"])
            print(f"{result['file']}: {result['digit']} ({result['probability']:.3f}; top 3: {others})")
    return 1 if refused else 0


def cli():
    sys.exit(main())


if __name__ == "__main__":
    cli()
