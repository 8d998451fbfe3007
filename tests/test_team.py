"""Team workflows with the real DVC: experiments, comparisons, run cache and remotes.

The session-wide history of two trained commits (conftest.py) serves every test; each test
works in its own clone. Queued sweeps: test_sweep.py.
"""

import getpass
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import (
    VARIANT_LEARNING_RATE,
    clone,
    file_md5,
    model_md5_in,
    run,
    run_capturing,
    set_params,
    stages_run,
)

pytestmark = pytest.mark.slow

def locked_model_md5(repository, revision, env):
    return model_md5_in(run(["git", "show", f"{revision}:dvc.lock"], repository, env))


def test_metrics_params_and_plots_diff_between_commits(history):
    project, env, baseline, variant = history

    metrics = json.loads(run(["dvc", "metrics", "diff", baseline, variant, "--json"], project, env))
    accuracy = metrics["reports/metrics.json"]["test.accuracy"]
    assert accuracy["old"] != accuracy["new"] and accuracy["diff"] == pytest.approx(
        accuracy["new"] - accuracy["old"])
    assert "test.loss" in metrics["reports/metrics.json"]

    params = json.loads(run(["dvc", "params", "diff", baseline, variant, "--json"], project, env))
    changed = params["params.yaml"]["train.optimizer.learning_rate"]
    assert (changed["old"], changed["new"]) == (1.0, VARIANT_LEARNING_RATE)

    plots = run(["dvc", "plots", "diff", baseline, variant, "--json"], project, env)
    for plot in ["reports/training/accuracy.csv", "reports/eval/predictions.csv",
                 "reports/figures/confusion_matrix.png", "reports/figures/test_predictions.png"]:
        assert plot in plots


def test_push_then_fresh_clone_pulls_everything(history, tmp_path):
    project, env, baseline, variant = history
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], project, env)
    run(["dvc", "push", "--all-commits", "--run-cache"], project, env)

    # The model registry: a version registered with GTO is downloadable by name.
    run(["gto", "register", "mnist-cnn", variant, "--version", "v1.0.0"], project, env)
    config = tmp_path / "remote.cfg"
    config.write_text(f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {remote}\n")
    run(["dvc", "artifacts", "get", str(project), "mnist-cnn", "--rev", "v1.0.0",
         "-o", str(tmp_path / "registered.keras"), "--config", str(config)], tmp_path, env)
    assert file_md5(tmp_path / "registered.keras") == locked_model_md5(project, variant, env)

    teammate = clone(history, tmp_path / "teammate")
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], teammate, env)
    run(["dvc", "pull", "--run-cache"], teammate, env)

    for path in ["data/raw", "data/prepared/train.npz", "data/model/model.keras",
                 "reports/metrics.json", "reports/figures/train_digits.png"]:
        assert (teammate / path).exists(), path
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate, env)
    assert stages_run(run(["dvc", "repro"], teammate, env)) == []

    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, variant, env)

    # An older commit's data: `dvc pull` fetches it; back on main, `dvc checkout` suffices.
    run(["git", "checkout", "-q", baseline], teammate, env)
    run(["dvc", "pull"], teammate, env)
    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, baseline, env)
    run(["git", "checkout", "-q", "-"], teammate, env)
    run(["dvc", "checkout"], teammate, env)
    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, variant, env)
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate, env)

    # The baseline's params on main: the pulled run cache restores that training run, fetching
    # its outputs from the remote, instead of training again.
    set_params(teammate, **{"train.optimizer.learning_rate": 1.0})
    run(["dvc", "gc", "--workspace", "--force"], teammate, env)  # the baseline's model is gone
    output = run(["dvc", "repro", "--pull"], teammate, env)
    assert "Stage 'train' is cached - skipping run" in output
    assert "train" not in stages_run(output)
    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, baseline, env)


def test_experiment_with_set_param_is_listed_with_its_metrics(history, tmp_path):
    project, env, *_ = history
    workspace = clone(history, tmp_path / "experiments")
    # The project's cache holds the data stages' outputs: only what the change touches runs.
    run(["dvc", "cache", "dir", "--local", str(project / ".dvc/cache")], workspace, env)

    output = run(["dvc", "exp", "run", "-S", "train.optimizer.learning_rate=0.5", "-n", "half-lr",
                  "evaluate"], workspace, env)
    assert stages_run(output) == ["train", "evaluate"]

    experiments = json.loads(run(["dvc", "exp", "show", "--json"], workspace, env))
    found = [
        exp for commit in experiments for exp in commit.get("experiments") or []
        if exp["name"] == "half-lr"
    ]
    assert len(found) == 1
    data = found[0]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["optimizer"]["learning_rate"] == 0.5
    assert "accuracy" in data["metrics"]["reports/metrics.json"]["data"]["test"]
    assert 0 <= data["metrics"]["reports/metrics.json"]["data"]["ood"]["accuracy"] <= 1


def test_fresh_clone_without_cache_or_remote_shows_every_result(history, tmp_path):
    _, env, baseline, _ = history
    reader = clone(history, tmp_path / "reader")  # as from a Git host: no DVC cache, no remote
    assert not (reader / ".dvc/cache").exists()

    shown, warnings = run_capturing(["dvc", "metrics", "show", "--json"], reader, env)
    assert warnings == ""
    metrics = json.loads(shown)[""]["data"]  # "" is the workspace
    assert set(metrics["reports/metrics.json"]["data"]) >= {"test", "train_set", "test_macro_f1", "ood"}
    training = metrics["reports/training/metrics.json"]["data"]
    assert set(training["training_batches"]) == {"loss", "accuracy"}
    assert set(training["speed"]) == {"epoch_seconds", "images_per_second", "training_seconds"}
    assert training["run"]["precision"]["used"] in {"float32", "mixed_bfloat16"}
    assert training["run"]["device"]["type"] == "CPU" and training["run"]["device"]["name"]

    diff, warnings = run_capturing(["dvc", "metrics", "diff", baseline, "--json"], reader, env)
    assert warnings == ""
    changed = json.loads(diff)["reports/training/metrics.json"]
    assert {"training_batches.loss", "training_batches.accuracy", "speed.epoch_seconds"} <= set(changed)

    # Nothing was held out, so every time_to is null: DVC's listing leaves them out, the file
    # has them.
    assert "time_to" not in training
    assert json.loads((reader / "reports/training/metrics.json").read_text())["time_to"] == \
        dict.fromkeys(["accuracy_99", "accuracy_99_5", "accuracy_99_7"])

    drawn_from_data = ["reports/training/loss.csv", "reports/training/accuracy.csv",
                       "reports/training/speed.csv", "reports/training/accuracy_by_seconds.csv",
                       "reports/eval/predictions.csv", "reports/eval/per_class.csv"]
    for command, revisions in ((["dvc", "plots", "show", "--json"], {"workspace"}),
                               (["dvc", "plots", "diff", baseline, "--json"],
                                {baseline, "workspace"})):
        shown, warnings = run_capturing(command, reader, env)
        assert warnings == "", command
        plots = json.loads(shown)
        assert not plots.get("errors"), plots["errors"]
        for name in drawn_from_data:
            rows = plots["data"][name][0]["content"]["data"]["values"]
            assert {row["rev"] for row in rows} == revisions, (command, name)
        assert "reports/figures/confusion_matrix.png" in plots["data"]


@pytest.fixture
def ssh_server(tmp_path):
    """A real OpenSSH server on 127.0.0.1 with throwaway keys; returns (url base, env changes)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.skip("OpenSSH server not installed (.ci/run installs Debian's openssh-server)")
    folder = tmp_path / "ssh"
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    folder.mkdir()
    for key in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)],
                       check=True)
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1
Port {port}
HostKey {folder / "host_key"}
AuthorizedKeysFile {folder / "authorized_keys"}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {getpass.getuser()}
StrictModes no
UsePAM no
PidFile {folder / "sshd.pid"}
Subsystem sftp internal-sftp
""")
    host_key = (folder / "host_key.pub").read_text().split()
    # The client trusts this server's throwaway key only: a known_hosts in a home of its own.
    (home / ".ssh/known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")],
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"sshd did not start: {server.stderr.read()}")
            time.sleep(0.1)
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{tmp_path / 'ssh-remote'}"
    yield url, folder / "user_key", {"HOME": str(home)}
    server.terminate()
    server.wait(timeout=10)


def test_push_and_pull_through_a_real_ssh_remote(history, ssh_server, tmp_path):
    project, env, baseline, variant = history
    url, key, env_changes = ssh_server
    env = {**env, **env_changes}
    sender = clone(history, tmp_path / "sender")
    # The sender has the outputs already: check them out of the project's cache, no retraining.
    run(["dvc", "cache", "dir", "--local", str(project / ".dvc/cache")], sender, env)
    run(["dvc", "checkout"], sender, env)
    for workspace in (sender,):
        run(["dvc", "remote", "add", "--local", "-d", "ssh", url], workspace, env)
        run(["dvc", "remote", "modify", "--local", "ssh", "keyfile", str(key)], workspace, env)
    run(["dvc", "push"], sender, env)

    teammate = clone(history, tmp_path / "teammate")
    run(["dvc", "remote", "add", "--local", "-d", "ssh", url], teammate, env)
    run(["dvc", "remote", "modify", "--local", "ssh", "keyfile", str(key)], teammate, env)
    run(["dvc", "pull"], teammate, env)

    assert file_md5(teammate / "data/model/model.keras") == locked_model_md5(teammate, variant, env)
    assert (teammate / "data/prepared/test.npz").exists()
    assert "Data and pipelines are up to date." in run(["dvc", "status"], teammate, env)
    assert stages_run(run(["dvc", "repro"], teammate, env)) == []
