"""mnist-sweep on a real Dask cluster on 127.0.0.1: a scheduler and worker processes, each worker
with its own folder as a separate machine would have, a bare Git remote and a folder DVC remote,
a grid on a 500-image slice. The checks before any task starts need no cluster."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from stages.commands import sweep
from tests.conftest import TINY, make_project, model_md5_in, run, write_mirror

DASK = str(Path(sys.executable).parent / "dask")
MNIST_SWEEP = str(Path(sys.executable).parent / "mnist-sweep")
SWEEP_SECONDS = 420  # the longest a sweep here may take, a killed worker's point included
UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


def test_the_grid_is_dvcs_sweep_expansion():
    """Worked by hand: the product in the order of the -S values, the last varying fastest,
    ranges expanded, another file's values prefixed with its name, files in the order named."""
    assert sweep.grid(["train.seed=range(1,3)", "recipe=strong,handwriting"]) == [
        ["train.seed=1", "recipe=strong"], ["train.seed=1", "recipe=handwriting"],
        ["train.seed=2", "recipe=strong"], ["train.seed=2", "recipe=handwriting"]]
    assert sweep.grid(["other.yaml:a=1,2", "b=3"]) == [["other.yaml:a=1", "b=3"],
                                                       ["other.yaml:a=2", "b=3"]]
    assert sweep.grid([]) == [[]]


def test_a_command_that_outlives_its_point_keeps_the_clone_locked(tmp_path):
    """As after a worker's crash: the point's part is over, the command it started runs on, and
    the next point waits for it. The command was started as run_logged starts it."""
    lock_path, log = tmp_path / "clone.lock", tmp_path / "point.log"
    script = "import os, sys, time; os.fstat(int(sys.argv[1])); time.sleep(float(sys.argv[2]))"
    with sweep.clone_lock(lock_path) as lock:
        sweep.run_logged([sys.executable, "-c", script, str(lock), "0"], tmp_path, log, lock)
        outliving = subprocess.Popen([sys.executable, "-c", script, str(lock), "1"],
                                     pass_fds=(lock,))
    started = time.monotonic()
    with sweep.clone_lock(lock_path):
        # The lock goes as the command exits (sleeping 1 s), a moment before it can be waited for.
        assert time.monotonic() - started > 0.8
    assert outliving.wait(timeout=10) == 0


# The checks before any task starts: on a repository that has DVC and a Git remote, run
# in this process against a scheduler that is never reached.

@pytest.fixture(scope="module")
def pushed_repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("preflight")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    run(["git", "init", "-q", "--bare", str(root / "origin.git")], root, env)
    clone = root / "clone"
    run(["git", "clone", "-q", str(root / "origin.git"), str(clone)], root, env)
    run(["dvc", "init", "-q"], clone, env)
    (clone / "stages").mkdir()
    (clone / "stages" / "README").write_text("a folder to run the command from\n")
    run(["git", "add", "-A"], clone, env)
    run(["git", "commit", "-qm", "dvc init"], clone, env)
    run(["git", "push", "-q", "origin", "HEAD"], clone, env)
    return root, env


@pytest.fixture
def repository(pushed_repository, tmp_path, monkeypatch):
    """A clone whose commit is on its Git remote, with a DVC remote; the command runs from a
    folder inside it. Returns (clone, env)."""
    template, env = pushed_repository
    clone = shutil.copytree(template / "clone", tmp_path / "clone", symlinks=True)
    # What `dvc remote add --local -d storage PATH` writes, without its second of start-up.
    (clone / ".dvc" / "config.local").write_text(
        f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {tmp_path / 'storage'}\n")
    monkeypatch.chdir(clone / "stages")
    return clone, env


def refused(capsys, *arguments):
    """The command's one-line refusal, given UNREACHABLE as the scheduler: a check that came
    after connecting would say so instead."""
    with pytest.raises(SystemExit) as exit_info:
        sweep.main(["--scheduler", UNREACHABLE, "--connect-timeout", "1", *arguments])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_commit_the_workers_cannot_fetch_is_refused(repository, capsys):
    clone, env = repository
    (clone / "new.txt").write_text("not pushed\n")
    run(["git", "add", "new.txt"], clone, env)
    run(["git", "commit", "-qm", "not pushed"], clone, env)
    line = refused(capsys, "-S", "train.seed=1,2")
    assert "is not on the Git remote 'origin'" in line and "git push origin HEAD" in line


def test_a_missing_dvc_remote_is_refused(repository, capsys):
    clone, env = repository
    run(["dvc", "remote", "remove", "--local", "storage"], clone, env)
    assert "no DVC remote" in refused(capsys)
    assert "no DVC remote named 'elsewhere'" in refused(capsys, "--dvc-remote", "elsewhere")


def test_uncommitted_changes_are_refused(repository, capsys):
    clone, _ = repository
    (clone / ".dvc" / "config").write_text("[core]\n    autostage = true\n")
    assert "uncommitted changes" in refused(capsys)


def test_an_unreachable_scheduler_is_one_line(repository, capsys):
    assert refused(capsys).startswith(f"mnist-sweep: no Dask scheduler at {UNREACHABLE}")


# The cluster: one scheduler, workers started and killed by the tests, one project.

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from distributed import Client

    root = tmp_path_factory.mktemp("cluster")
    md5s = write_mirror(root / "mirror", train_count=500, test_count=200)
    project = root / "project"
    env = make_project(project, root / "mirror", md5s, **TINY)
    (project / "dvc.lock").unlink()  # it records the full data's outputs, which nothing here has
    run(["git", "commit", "-qam", "a pipeline not yet run"], project, env)
    origin = root / "origin.git"
    run(["git", "clone", "-q", "--bare", str(project), str(origin)], root, env)
    workspace = root / "client"
    run(["git", "clone", "-q", str(origin), str(workspace)], root, env)
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(root / "storage")], workspace,
        env)

    processes = {}

    def start(name, command, extra_env=None):
        with open(root / f"{name}.log", "w") as log:
            processes[name] = subprocess.Popen(command, cwd=root, env={**env, **(extra_env or {})},
                                               stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)

    scheduler_file = root / "scheduler.json"
    start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                        "--no-dashboard", "--scheduler-file", str(scheduler_file)])
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    dask_client = Client(address, timeout=30)

    def start_worker(name, *options):
        """A worker with its own folder (its clone, logs and DVC cache), one point at a time."""
        start(name, [DASK, "worker", address, "--host", "127.0.0.1", "--name", name,
                     "--nthreads", "1", "--no-nanny", "--no-dashboard", *options],
              {"MNIST_SWEEP_HOME": str(root / f"machine-{name}")})
        deadline = time.monotonic() + 60
        while name not in worker_names() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert name in worker_names(), (root / f"{name}.log").read_text()

    def worker_names():
        return {info["name"] for info in dask_client.scheduler_info()["workers"].values()}

    def kill(name):
        """As a machine dies: the worker and every process it started, at once."""
        os.killpg(processes[name].pid, signal.SIGKILL)
        processes[name].wait()

    start_worker("a")  # each test can run alone; the tests add and kill others
    try:
        yield SimpleNamespace(root=root, workspace=workspace, env=env, address=address,
                              origin=origin, start_worker=start_worker, kill=kill,
                              processes=processes)
    finally:
        dask_client.close()
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# A command started as a script's background job starts: SIGINT ignored (kept across exec),
# whether or not pytest itself was started so. A shell, not a preexec_fn: this process runs the
# Dask client's threads, and Python code between fork and exec can deadlock on their locks.
SIGINT_IGNORED = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


def start_sweep(cluster, *arguments):
    path = cluster.root / f"sweep-{time.monotonic_ns()}.log"
    with open(path, "w") as log:
        process = subprocess.Popen([*SIGINT_IGNORED, MNIST_SWEEP, "--scheduler", cluster.address,
                                    *arguments],
                                   cwd=cluster.workspace, env=cluster.env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    process.log = path
    return process


def finished(process):
    """(exit status, output) of a sweep, waited for at most SWEEP_SECONDS."""
    try:
        code = process.wait(timeout=SWEEP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"the sweep took over {SWEEP_SECONDS} s:\n{process.log.read_text()}")
    return code, process.log.read_text()


def wait_for(condition, what, seconds=SWEEP_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds} s for {what}")


def training_processes(root_process):
    """The train stages running below a process."""
    try:
        below = psutil.Process(root_process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for process in below:
        try:
            if "stages.train" in process.cmdline():
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def remote_experiments(cluster):
    """The experiment names on the Git remote."""
    refs = run(["git", "ls-remote", str(cluster.origin), "refs/exps/*"], cluster.root, cluster.env)
    return {line.rsplit("/", 1)[1] for line in refs.splitlines()}


def shown_experiments(cluster):
    """{name: (train.seed, test accuracy, model md5)} of what `dvc exp show` lists here."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], cluster.workspace, cluster.env))
    found = {}
    for commit in shown:
        for experiment in commit.get("experiments") or []:
            revision = experiment["revs"][0]
            data = revision["data"]
            lock = run(["git", "show", f"{revision['rev']}:dvc.lock"], cluster.workspace,
                       cluster.env)
            found[experiment["name"]] = (
                data["params"]["params.yaml"]["data"]["train"]["seed"],
                data["metrics"]["reports/metrics.json"]["data"]["test"]["accuracy"],
                model_md5_in(lock))
    return found


def training_anywhere(cluster):
    """The train stages running below any worker of the cluster."""
    return [found for process in cluster.processes.values()
            for found in training_processes(process)]


@pytest.mark.slow
def test_a_killed_workers_point_runs_on_another_and_the_sweep_completes(cluster):
    cluster.start_worker("b")
    process = start_sweep(cluster, "-S", "train.seed=1,2", "-n", "grid")
    point = wait_for(lambda: next((line.split(":")[0] for line in process.log.read_text()
                                   .splitlines() if line.endswith("running on b")), None),
                     "a point to start on worker b")
    wait_for(lambda: training_processes(cluster.processes["b"]), "worker b's point to train")
    cluster.kill("b")

    code, output = finished(process)
    assert code == 0, output
    assert f"{point}: running on a" in output
    assert "grid-1: done on a" in output and "grid-2: done on a" in output
    assert "2 done, 0 failed" in output
    assert remote_experiments(cluster) == {"grid-1", "grid-2"}
    shown = shown_experiments(cluster)
    assert {name: seed for name, (seed, _, _) in shown.items()} == {"grid-1": 1, "grid-2": 2}
    for _, accuracy, model in shown.values():
        assert 0 < accuracy <= 1
        # The outputs came with the experiments: the model is in this clone's cache.
        assert (cluster.workspace / ".dvc" / "cache" / "files" / "md5" / model[:2]
                / model[2:]).is_file()


@pytest.mark.slow
def test_a_second_sweep_trains_nothing_and_gpu_points_run_on_gpu_workers(cluster):
    """Asked for a GPU that no worker offers, one line; then worker c, a machine that never ran
    a point, restores both from the run cache on the DVC remote; worker a, idle but offering no
    GPU, runs none."""
    before = shown_experiments(cluster)
    code, output = finished(start_sweep(cluster, "-S", "train.seed=1", "--gpus-per-point", "1"))
    assert (code, output) == (2, "mnist-sweep: no worker offers 1 GPU(s) "
                                 "(dask worker ... --resources GPU=1)\n")
    cluster.start_worker("c", "--resources", "GPU=1")
    code, output = finished(start_sweep(cluster, "-S", "train.seed=1,2", "-n", "again",
                                        "--gpus-per-point", "1"))
    assert code == 0, output
    for index in (1, 2):
        assert f"again-{index}: running on c" in output
        assert f"again-{index}: done on c" in output
    assert "restored from the run cache" in output and "(trained)" not in output
    assert "running on a" not in output
    logs = (cluster.root / "machine-c" / "c" / "logs").glob("again-*.log")
    assert not any("Running stage 'train'" in log.read_text() for log in logs)
    shown = shown_experiments(cluster)
    assert shown["again-1"] == before["grid-1"] and shown["again-2"] == before["grid-2"]


@pytest.mark.slow
def test_a_failing_point_is_reported_and_the_others_go_on(cluster):
    code, output = finished(start_sweep(cluster, "-S", "train.seed=1", "-S", "train.epochs=1,0",
                                        "-n", "mixed"))
    assert code == 1, output
    assert "mixed-1: done" in output
    failure = output[output.index("mixed-2: failed"):]
    assert "train.epochs: must be >= 1, got 0" in failure
    assert "1 done, 1 failed (mixed-2)" in output
    assert "mixed-1" in remote_experiments(cluster) and "mixed-2" not in remote_experiments(cluster)


@pytest.mark.slow
def test_ctrl_c_stops_the_running_point_and_pushes_nothing(cluster):
    process = start_sweep(cluster, "-S", "train.seed=3", "-n", "interrupted")
    wait_for(lambda: training_anywhere(cluster), "the point to train")
    process.send_signal(signal.SIGINT)
    code, output = finished(process)
    assert code == 130, output
    assert "interrupted; 1 point(s) cancelled, none of them pushed" in output
    wait_for(lambda: not training_anywhere(cluster),
             "the training to stop", seconds=30)
    assert "interrupted-1" not in remote_experiments(cluster)
