"""Resume state for the train stage: the model after the last completed epoch, and its log.

Kept in data/resume/, outside the stage's declared outputs, so DVC neither deletes it before a
rerun nor treats the stage as `persist` (which would switch its run cache off). A fingerprint of
the params, the data and the training code ties the state to one run: anything else discards it.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

from stages.lib.atomic import atomic_path, write_json
from stages.lib.model import load_model

RESUME_DIR = Path("data/resume")
STATE_FILE = RESUME_DIR / "state.json"
LIBRARY = Path(__file__).parent
FINGERPRINTED_CODE = [LIBRARY.parent / "train.py", *(
    LIBRARY / name for name in ("training.py", "model.py", "augmentation.py", "batch_norm.py",
                                "optimizer.py", "splits.py", "provenance.py", "seeds.py",
                                "backend.py", "tensorflow_parts.py", "jax_parts.py"))]


def fingerprint(train_params, data_files):
    digest = hashlib.sha256(json.dumps(train_params, sort_keys=True).encode())
    for path in [*map(Path, data_files), *FINGERPRINTED_CODE]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load(run_fingerprint):
    """Return (model, per-epoch logs) saved by this same run, or None. Other state is discarded
    with one line that says why."""
    if not STATE_FILE.exists():
        clear()  # a model file whose state was never written
        return None
    try:
        state = json.loads(STATE_FILE.read_text())
        if state["fingerprint"] == run_fingerprint:
            return load_model(RESUME_DIR / state["model"]), state["history"]
        reason = "it belongs to a run with other params, data or training code"
    # Whatever a corrupt file or another Keras version raises, the run can still start afresh.
    except Exception as error:  # noqa: BLE001
        reason = f"it cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    print(f"train: discarding the resume state in {RESUME_DIR}: {reason}; "
          "training starts from epoch 1", file=sys.stderr)
    clear()
    return None


def save(model, history, run_fingerprint):
    """Record a completed epoch: the model file first, then the state that names it."""
    model_name = f"epoch-{len(history):03d}.keras"
    with atomic_path(RESUME_DIR / model_name) as temporary:
        model.save(temporary)
    write_json(STATE_FILE, {"fingerprint": run_fingerprint, "model": model_name, "history": history})
    for stale in RESUME_DIR.glob("epoch-*.keras"):
        if stale.name != model_name:
            stale.unlink()


def clear():
    shutil.rmtree(RESUME_DIR, ignore_errors=True)
