"""Resume state for the train stage: the members of an ensemble trained to their end, the model
after the last completed epoch of the member in training, and the log of every epoch.

Kept in data/resume/, outside the stage's declared outputs, so DVC neither deletes it before a
rerun nor treats the stage as `persist` (which would switch its run cache off). A fingerprint of
the params, the data and the training code ties the state to one run: anything else discards it.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

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


class Resumed(NamedTuple):
    history: list  # every completed epoch's logs, all members' in order
    finished: list  # the members trained to their last epoch, as models
    model: Any  # the member in training after its last completed epoch, or None


def load(run_fingerprint):
    """The state saved by this same run as Resumed, or None. Other state is discarded with one
    line that says why."""
    if not STATE_FILE.exists():
        clear()  # a model file whose state was never written
        return None
    try:
        state = json.loads(STATE_FILE.read_text())
        if state["fingerprint"] == run_fingerprint:
            return Resumed(
                state["history"],
                [load_model(RESUME_DIR / member_file(index)) for index in range(state["finished"])],
                load_model(RESUME_DIR / state["model"]) if state["model"] else None)
        reason = "it belongs to a run with other params, data or training code"
    # Whatever a corrupt file or another Keras version raises, the run can still start afresh.
    except Exception as error:  # noqa: BLE001
        reason = f"it cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    print(f"train: discarding the resume state in {RESUME_DIR}: {reason}; "
          "training starts from epoch 1", file=sys.stderr)
    clear()
    return None


def member_file(index):
    return f"member-{index + 1}.keras"


def _record(history, run_fingerprint, finished, model_name):
    """The state that names the files: written after them, so it never names a missing one."""
    write_json(STATE_FILE, {"fingerprint": run_fingerprint, "finished": finished,
                            "model": model_name, "history": history})
    for stale in RESUME_DIR.glob("epoch-*.keras"):
        if stale.name != model_name:
            stale.unlink()


def save(model, history, run_fingerprint, finished):
    """Record a completed epoch of the member in training, after `finished` members."""
    model_name = f"epoch-{len(history):03d}.keras"
    with atomic_path(RESUME_DIR / model_name) as temporary:
        model.save(temporary)
    _record(history, run_fingerprint, finished, model_name)


def finish_member(model, history, run_fingerprint, index):
    """Record member `index` trained to its end (its final weights, the moving average where the
    optimizer keeps one): the next run starts the next member."""
    with atomic_path(RESUME_DIR / member_file(index)) as temporary:
        model.save(temporary)
    _record(history, run_fingerprint, index + 1, None)


def clear():
    shutil.rmtree(RESUME_DIR, ignore_errors=True)
