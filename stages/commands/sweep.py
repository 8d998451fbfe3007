"""mnist-sweep: the points of a `dvc exp run -S` grid, each a task on a Dask distributed cluster.

    mnist-sweep --scheduler tcp://HOST:8786 -S 'recipe=strong,handwriting' -S 'train.seed=1,2,3'

The grid is expanded by DVC's own Hydra sweep expansion, so the points and their names
(PREFIX-1, PREFIX-2, ...) are those `dvc exp run --queue -n PREFIX` would make. Each worker
keeps its own clone of this repository's Git remote, checks out this commit, pulls the run
cache from the DVC remote (a point already run anywhere is restored, not trained), runs
`dvc exp run` with the point's values, pushes the outputs, the run cache and then the
experiment's Git ref (so an interrupted push never leaves a ref whose outputs are missing), and
returns the metrics. Dask hands out the points and gives a dead worker's point to another. Here
the experiments are then pulled, so `dvc exp show` and `dvc metrics diff` list them.
docs/experiments.md ("Sweeps across machines") says how to start the cluster.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from stages.commands import interrupt_on_ctrl_c

METRICS = "reports/metrics.json"
LOG_TAIL_LINES = 15
CANCEL_POLL_SECONDS = 1.0
DEFAULT_HOME = Path.home() / ".cache" / "mnist-sweep"


class SweepError(Exception):
    """A reason to stop before any point runs, said in one line."""


class PointFailed(Exception):
    """A point's command failed; the message ends with the last lines of its log."""


class PointCancelled(Exception):
    """The sweep was interrupted before this point's results were pushed."""


def grid(set_params):
    """Each point's -S values, in the order and by the expansion `dvc exp run --queue` uses."""
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import get_hydra_sweeps

    return [[override if path == "params.yaml" else f"{path}:{override}"
             for path, overrides in point.items() for override in overrides]
            for point in get_hydra_sweeps(to_path_overrides(set_params))]


def git(*arguments, cwd):
    result = subprocess.run(["git", *arguments], cwd=cwd, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise SweepError(f"git {' '.join(arguments)}: {last_line}")
    return result.stdout.strip()


def locate(workspace, git_remote, dvc_remote):
    """What the workers need to run this commit: checked here, before any task starts."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = git("rev-parse", "--show-toplevel", cwd=workspace)
    except SweepError:
        raise SweepError(f"{workspace} is not in a Git repository") from None
    commit = git("rev-parse", "HEAD", cwd=root)
    if git("status", "--porcelain", "--untracked-files=no", cwd=root):
        raise SweepError("uncommitted changes: the workers run the commit, so commit (and push) "
                         "them, or stash them, first")
    try:
        git_url = git("remote", "get-url", git_remote, cwd=root)
    except SweepError:
        raise SweepError(f"no Git remote named {git_remote!r} (git remote add {git_remote} URL)") \
            from None
    git("fetch", "-q", git_remote, cwd=root)
    if not git("for-each-ref", "--contains", commit, f"refs/remotes/{git_remote}", cwd=root):
        raise SweepError(f"commit {commit[:7]} is not on the Git remote {git_remote!r} "
                         f"({git_url}), so the workers cannot fetch it: git push {git_remote} HEAD")
    try:
        with Repo(root) as repo:
            config = repo.config
    except NotDvcRepoError:
        raise SweepError(f"{root} is not a DVC repository") from None
    name = dvc_remote or config["core"].get("remote")
    if not name:
        raise SweepError("no DVC remote: the workers share outputs and the run cache through one "
                         "(dvc remote add -d NAME URL)")
    if name not in config["remote"]:
        raise SweepError(f"no DVC remote named {name!r} (dvc remote list shows those there are)")
    return {"root": root, "commit": commit, "git_remote": git_remote, "git_url": git_url,
            "dvc_remote": name, "dvc_url": config["remote"][name]["url"]}


def prefix_of(commit, points):
    """A name prefix that differs between grids and between commits."""
    digest = hashlib.sha1(json.dumps([commit, points]).encode()).hexdigest()
    return f"sweep-{digest[:6]}"


# The worker's side: run_point runs in a Dask worker, in that worker's clone.

@contextlib.contextmanager
def clone_lock(path):
    """The worker's clone, exclusively, for one point; yields the lock's file descriptor. The
    commands the point starts hold it too (run_logged passes it on), so a command that outlives
    its worker (a crash, a restart) keeps the clone until it ends, and the next point waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()


def worker_folder(worker_name):
    """This worker's clone and logs, under $MNIST_SWEEP_HOME (one folder per worker name)."""
    home = Path(os.environ.get("MNIST_SWEEP_HOME", DEFAULT_HOME))
    return home / re.sub(r"[^\w.-]+", "_", str(worker_name))


def command_env():
    """The worker's environment with its own Python first, as the stages' commands expect."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run_logged(command, cwd, log, lock, cancel=None):
    """Runs `command` holding the clone's `lock`, its output appended to `log`; kills it and its
    children if `cancel` is set meanwhile (PointCancelled), and raises PointFailed with the
    log's tail if it fails."""
    import psutil

    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   env=command_env(), pass_fds=(lock,))
    while True:
        try:
            code = process.wait(timeout=CANCEL_POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
                process.kill()
                process.wait()
                raise PointCancelled("cancelled while running") from None
    if code != 0:
        tail = Path(log).read_text().splitlines()[-LOG_TAIL_LINES:]
        raise PointFailed(f"{' '.join(command[:3])} exited with {code}:\n" + "\n".join(tail))


def checkout(clone, job, log, lock):
    """The worker's clone at the client's commit, clean: whatever a killed run left is gone;
    the DVC cache lives beside the clone, so cleaning keeps it."""
    if not (clone / ".git").exists():
        clone.parent.mkdir(parents=True, exist_ok=True)
        run_logged(["git", "clone", "-q", job["git_url"], str(clone)], clone.parent, log, lock)
    steps = [
        ["git", "remote", "set-url", "origin", job["git_url"]],
        ["git", "fetch", "-q", "origin"],
        ["git", "checkout", "-q", "--force", "--detach", job["commit"]],
        ["git", "clean", "-q", "-ffdx"],
    ]
    for step in steps:
        run_logged(step, clone, log, lock)
    # What `dvc cache dir --local` and `dvc remote add --local --default` write, without
    # starting DVC twice.
    from dvc.config import Config

    with Config(clone / ".dvc").edit("local") as config:
        config["cache"]["dir"] = str(clone.parent / "dvc-cache")
        config["remote"][job["dvc_remote"]] = {"url": job["dvc_url"]}
        config["core"]["remote"] = job["dvc_remote"]
    # The clone's own experiments are scratch (each is on the Git remote once pushed); a run of
    # the same name again would otherwise meet the old one.
    refs = subprocess.run(["git", "for-each-ref", "--format=delete %(refname)", "refs/exps"],
                          cwd=clone, capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "update-ref", "--stdin"], input=refs, cwd=clone, text=True, check=True)


def run_point(job):
    """One point, in this worker's clone: returns its name, worker, metrics, whether it
    trained, and its seconds."""
    from distributed import Event, get_worker

    worker = get_worker()
    folder = worker_folder(worker.name)
    clone, log = folder / "repo", folder / "logs" / f"{job['name']}.log"
    cancel = Event(job["cancel_event"])
    started = time.monotonic()
    with clone_lock(folder / "clone.lock") as lock:
        if cancel.is_set():
            raise PointCancelled("cancelled before it started")
        # The scheduler stamps a worker's event with its address under "worker".
        worker.log_event(job["topic"], {"name": job["name"], "on": str(worker.name)})
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        checkout(clone, job, log, lock)
        run_logged(["dvc", "pull", "--run-cache", "--allow-missing", "-q"], clone, log, lock,
                   cancel)
        settings = [argument for value in job["overrides"] for argument in ("-S", value)]
        run_logged(["dvc", "exp", "run", "--pull", "-n", job["name"], *settings], clone, log,
                   lock, cancel)
        metrics = json.loads((clone / METRICS).read_text())
        if cancel.is_set():
            raise PointCancelled("cancelled before its results were pushed")
        # Outputs and run cache first, the experiment's ref last: once the ref is on the Git
        # remote, everything it names is on the DVC remote. Not cancelled from here on.
        run_logged(["dvc", "push", "--run-cache", "-q"], clone, log, lock)
        run_logged(["dvc", "exp", "push", "--force", "--no-cache", "origin", job["name"]], clone,
                   log, lock)
    trained = "Running stage 'train'" in log.read_text()
    return {"name": job["name"], "worker": str(worker.name), "metrics": metrics,
            "trained": trained, "seconds": round(time.monotonic() - started, 1)}


# The client's side.

def describe(overrides):
    return " ".join(overrides) or "(the defaults)"


def accuracy_of(metrics):
    return metrics.get("test", {}).get("accuracy")


def sweep(arguments):
    """Runs the grid; returns the exit status: 0 all points done, 1 any failed, 130 interrupted."""
    points = grid(arguments.set_param)
    target = locate(Path.cwd(), arguments.git_remote, arguments.dvc_remote)
    prefix = arguments.name or prefix_of(target["commit"], points)
    from distributed import Client, Event, as_completed

    try:
        client = Client(arguments.scheduler, timeout=arguments.connect_timeout)
    except OSError as error:
        raise SweepError(f"no Dask scheduler at {arguments.scheduler}: {error}") from None
    with client:
        resources = {"GPU": arguments.gpus_per_point} if arguments.gpus_per_point else {}
        offered = [info.get("resources", {}).get("GPU", 0)
                   for info in client.scheduler_info()["workers"].values()]
        if resources and max(offered, default=0) < arguments.gpus_per_point:
            raise SweepError(f"no worker offers {arguments.gpus_per_point} GPU(s) "
                             "(dask worker ... --resources GPU=1)")
        sweep_id = uuid.uuid4().hex[:8]
        topic = f"mnist-sweep-{sweep_id}"
        cancel = Event(f"{topic}-cancel", client=client)
        names = [f"{prefix}-{index}" for index in range(1, len(points) + 1)]
        finished = set()
        print(f"mnist-sweep: {len(points)} point(s) of commit {target['commit'][:7]}, "
              f"{len(offered)} worker(s) now", flush=True)
        for name, overrides in zip(names, points):
            print(f"{name} [{describe(overrides)}]: waiting", flush=True)

        def started(event):
            _, message = event
            if message["name"] not in finished:
                print(f"{message['name']}: running on {message['on']}", flush=True)

        client.subscribe_topic(topic, started)
        jobs = [{"name": name, "overrides": overrides, "commit": target["commit"],
                 "git_url": target["git_url"], "dvc_remote": target["dvc_remote"],
                 "dvc_url": target["dvc_url"], "topic": topic, "cancel_event": f"{topic}-cancel"}
                for name, overrides in zip(names, points)]
        futures = {client.submit(run_point, job, key=f"{topic}-{job['name']}", pure=False,
                                 resources=resources or None): job["name"] for job in jobs}
        done, failed = [], []
        try:
            for future in as_completed(futures):
                name = futures[future]
                finished.add(name)
                if future.status == "finished":
                    result = future.result()
                    done.append(result)
                    how = "trained" if result["trained"] else "restored from the run cache"
                    print(f"{name}: done on {result['worker']} in {result['seconds']} s ({how}), "
                          f"test accuracy {accuracy_of(result['metrics'])}", flush=True)
                else:
                    failed.append(name)
                    print(f"{name}: failed: {future.exception()}", flush=True)
        except KeyboardInterrupt:
            cancel.set()
            client.cancel(list(futures))
            print(f"mnist-sweep: interrupted; {len(futures) - len(finished)} point(s) cancelled, "
                  "none of them pushed", flush=True)
            pull(target, [result["name"] for result in done])
            return 130
        pulled = pull(target, [result["name"] for result in done])
    print(f"mnist-sweep: {len(done)} done, {len(failed)} failed"
          + (f" ({', '.join(failed)})" if failed else ""), flush=True)
    return 0 if pulled and not failed else 1


def pull(target, names):
    """The finished experiments and their outputs into this clone, so that `dvc exp show` lists
    them; returns whether that worked."""
    if not names:
        return True
    result = subprocess.run([sys.executable, "-m", "dvc", "exp", "pull", "--force", "--remote",
                             target["dvc_remote"], target["git_remote"], *names],
                            cwd=target["root"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"mnist-sweep: dvc exp pull failed: {result.stderr.strip()}", flush=True)
        return False
    print(f"mnist-sweep: {len(names)} experiment(s) pulled: dvc exp show lists them", flush=True)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mnist-sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", required=True, help="the Dask scheduler, tcp://HOST:PORT")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUES",
                        help="as `dvc exp run -S`, sweep syntax included (a=1,2 or range(1,4))")
    parser.add_argument("-n", "--name", help="experiments are named NAME-1, NAME-2, ... "
                        "(default: sweep- and a hash of the commit and the grid)")
    parser.add_argument("--gpus-per-point", type=int, default=0,
                        help="GPUs each point asks for, of the workers' GPU resource")
    parser.add_argument("--git-remote", default="origin", help="the remote the workers clone")
    parser.add_argument("--dvc-remote", help="the DVC remote the workers share (default: DVC's)")
    parser.add_argument("--connect-timeout", type=float, default=10, metavar="SECONDS",
                        help="how long to try reaching the scheduler (default: 10)")
    arguments = parser.parse_args(argv)
    try:
        import distributed  # noqa: F401
    except ImportError:
        parser.exit(2, "mnist-sweep: needs Dask's distributed: pip install 'mnist-dvc[sweep]'\n")
    interrupt_on_ctrl_c()
    try:
        return sweep(arguments)
    except SweepError as error:
        parser.exit(2, f"mnist-sweep: {error}\n")


def cli():
    sys.exit(main())
