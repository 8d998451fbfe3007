"""A resume state that train cannot use is discarded with one line that says why."""

import json

import keras
import numpy as np
import pytest

from stages.lib import checkpoint


@pytest.fixture
def saved_state(tmp_path, monkeypatch):
    """A resume state saved by a run with fingerprint "run-a", in a temporary working folder."""
    monkeypatch.chdir(tmp_path)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    checkpoint.save(model, [{"loss": 1.0}], "run-a", finished=0)
    return tmp_path / checkpoint.RESUME_DIR


def test_the_same_run_resumes_silently(saved_state, capsys):
    history, finished, model = checkpoint.load("run-a")
    assert history == [{"loss": 1.0}] and finished == [] and model.count_params() == 3
    assert capsys.readouterr().err == ""


def test_another_runs_state_is_discarded_with_the_reason(saved_state, capsys):
    assert checkpoint.load("run-b") is None
    assert capsys.readouterr().err.splitlines() == [
        f"train: discarding the resume state in {checkpoint.RESUME_DIR}: it belongs to a run "
        "with other params, data or training code; training starts from epoch 1"]
    assert not saved_state.exists()


def test_an_unreadable_model_is_discarded_with_the_reason(saved_state, capsys):
    state = json.loads((saved_state / "state.json").read_text())
    (saved_state / state["model"]).write_bytes(b"not a keras file")

    assert checkpoint.load("run-a") is None
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"train: discarding the resume state in {checkpoint.RESUME_DIR}: "
                               "it cannot be read (")
    assert lines[0].endswith("); training starts from epoch 1")
    assert not saved_state.exists()


def test_no_state_is_no_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert checkpoint.load("run-a") is None
    assert capsys.readouterr().err == ""


def test_a_run_stopped_after_its_last_epoch_resumes_to_the_averaged_weights(tmp_path, monkeypatch):
    from stages.lib.training import Checkpoint, fit, training_log

    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    inputs = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    targets = inputs.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9), loss="mse")
    train, history = {"epochs": 2}, []

    def run(model, history, log):
        with training_log(tmp_path / log, history) as live:
            fit(model, train["epochs"], len(history), live,
                batches=((inputs[start:start + 16], targets[start:start + 16])
                         for _ in range(2) for start in range(0, 64, 16)),
                steps_per_epoch=4, validation_data=None,
                callbacks=[Checkpoint(history, "run-a", 0)])

    run(model, history, "uninterrupted")
    averaged = model.get_weights()
    # Killed before the model was saved: the state of the last epoch is all there is.
    resumed_history, _, resumed = checkpoint.load("run-a")
    assert len(resumed_history) == 2
    assert not np.array_equal(resumed.get_weights()[0], averaged[0]), "saved as trained"
    run(resumed, resumed_history, "resumed")
    for mine, theirs in zip(resumed.get_weights(), averaged, strict=True):
        assert np.array_equal(mine, theirs)


def test_finished_members_resume_as_models_and_the_next_member_starts_afresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = (keras.Sequential([keras.Input((2,)), keras.layers.Dense(units)])
                     for units in (1, 3))
    checkpoint.save(first, [{"loss": 1.0}], "run-a", finished=0)
    checkpoint.finish_member(first, [{"loss": 1.0}], "run-a", 0)
    history, finished, model = checkpoint.load("run-a")
    assert (history, [member.count_params() for member in finished], model) == (
        [{"loss": 1.0}], [3], None)
    assert not list((tmp_path / checkpoint.RESUME_DIR).glob("epoch-*")), "the epoch file is gone"

    checkpoint.save(second, [{"loss": 1.0}, {"loss": 0.5}], "run-a", finished=1)
    history, finished, model = checkpoint.load("run-a")
    assert [member.count_params() for member in finished] == [3]
    assert model.count_params() == 9 and len(history) == 2
