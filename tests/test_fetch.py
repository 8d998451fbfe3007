"""The fetch stage, run as a command against local folders and a real HTTP server on 127.0.0.1."""

import socket
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.conftest import MNIST_FILES, MNIST_SOURCES, run_stage, write_mnist_sources

TRAIN_IMAGES = MNIST_FILES["train_images"]
TIMEOUT = 0.5  # fetch.timeout in these tests, in seconds
STALL_SECONDS = 5


class MirrorHandler(SimpleHTTPRequestHandler):
    """Serves a mirror folder, misbehaving as its server's `mode` says."""

    def do_GET(self):
        mode = self.server.mode
        if mode in (404, 500):
            self.send_error(mode)
        elif mode == "stall":  # far longer than fetch.timeout
            time.sleep(STALL_SECONDS)
            self.send_error(503)
        elif mode == "fail-first" and self.path.endswith(TRAIN_IMAGES) and not self.server.failed:
            self.server.failed = True  # a passing fault: the next request is served
            self.send_error(500)
        elif mode == "close-midway":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\0" * 100)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_mirror(tiny_mirror):
    """Start an HTTP server for the tiny mirror; set `server.mode` to make it misbehave."""
    folder, _ = tiny_mirror
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(MirrorHandler, directory=str(folder)))
    server.mode, server.failed = "serve", False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def closed_port_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


def write_fetch_params(project, retries=0):
    (project / "params.yaml").write_text(
        yaml.safe_dump({"fetch": {"timeout": TIMEOUT, "retries": retries}}))


def fetch(project, md5s, mirrors, local_mirror=None, retries=0):
    write_fetch_params(project, retries)
    write_mnist_sources(project, md5s, mirrors)
    env = {"MNIST_MIRROR": str(local_mirror)} if local_mirror else {"MNIST_MIRROR": ""}
    return run_stage("fetch", project, env=env, check=False)


def assert_fetched(project, mirror_folder):
    for name in MNIST_FILES.values():
        assert (project / "data/raw" / name).read_bytes() == (mirror_folder / name).read_bytes()
    assert sorted(p.name for p in (project / "data/raw").iterdir()) == sorted(MNIST_FILES.values())


def test_from_local_mirror_environment_variable(tmp_path, tiny_mirror):
    folder, md5s = tiny_mirror
    result = fetch(tmp_path, md5s, [closed_port_url()], local_mirror=folder)
    assert result.returncode == 0, result.stderr
    assert_fetched(tmp_path, folder)


def test_from_file_url_mirror_in_the_sources_file(tmp_path, tiny_mirror):
    folder, md5s = tiny_mirror
    result = fetch(tmp_path, md5s, [folder.as_uri()])
    assert result.returncode == 0, result.stderr
    assert_fetched(tmp_path, folder)


def test_downloads_over_http(tmp_path, http_mirror, tiny_mirror):
    _, url = http_mirror
    folder, md5s = tiny_mirror
    result = fetch(tmp_path, md5s, [url])
    assert result.returncode == 0, result.stderr
    assert_fetched(tmp_path, folder)


def test_corrupted_file_falls_through_to_next_source(tmp_path, tiny_mirror):
    folder, md5s = tiny_mirror
    corrupted = tmp_path / "corrupted"
    corrupted.mkdir()
    for name in MNIST_FILES.values():
        (corrupted / name).write_bytes((folder / name).read_bytes())
    (corrupted / TRAIN_IMAGES).write_bytes(b"not gzip at all")

    project = tmp_path / "project"
    project.mkdir()
    result = fetch(project, md5s, [folder.as_uri()], local_mirror=corrupted)

    assert result.returncode == 0, result.stderr
    assert f"{TRAIN_IMAGES} from {folder.as_uri()}" in result.stdout
    assert_fetched(project, folder)


@pytest.mark.parametrize("mode", [404, 500, "stall", "close-midway"])
def test_failing_http_mirror_falls_through(tmp_path, http_mirror, tiny_mirror, mode):
    server, url = http_mirror
    server.mode = mode
    folder, md5s = tiny_mirror
    project = tmp_path / "project"
    project.mkdir()
    result = fetch(project, md5s, [url, folder.as_uri()])
    assert result.returncode == 0, result.stderr
    assert_fetched(project, folder)


@pytest.mark.parametrize("retries", [0, 1])
def test_a_server_error_is_retried_as_often_as_retries_says(tmp_path, http_mirror, tiny_mirror,
                                                           retries):
    server, url = http_mirror
    server.mode = "fail-first"
    folder, md5s = tiny_mirror
    result = fetch(tmp_path, md5s, [url, folder.as_uri()], retries=retries)
    assert result.returncode == 0, result.stderr
    assert_fetched(tmp_path, folder)
    source = url if retries else folder.as_uri()
    assert f"fetch: {TRAIN_IMAGES} from {source}\n" in result.stdout


def test_a_stalled_server_is_left_after_the_timeout(tmp_path, http_mirror, tiny_mirror):
    server, url = http_mirror
    server.mode = "stall"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = fetch(tmp_path, tiny_mirror[1], [url], local_mirror=empty)
    # Were the timeout ignored, the server's answer after STALL_SECONDS would be HTTP 503.
    assert result.returncode == 1
    assert f"{url}: TimeoutError: timed out" in result.stderr


def test_when_every_source_fails_one_line_names_file_and_each_failure(tmp_path, tiny_mirror):
    folder, md5s = tiny_mirror
    md5s[TRAIN_IMAGES] = "0" * 32  # no source can match: as if every mirror served wrong bytes
    unreachable = closed_port_url()
    empty = tmp_path / "empty"
    empty.mkdir()
    project = tmp_path / "project"
    project.mkdir()

    result = fetch(project, md5s, [unreachable, folder.as_uri()], local_mirror=empty)

    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.stderr
    assert message.startswith(f"fetch: {TRAIN_IMAGES}: no source worked")
    assert f"{empty}: no file {empty / TRAIN_IMAGES}" in message
    assert f"{unreachable}: URLError: [Errno 111] Connection refused" in message
    assert f"{folder.as_uri()}: content MD5 " in message and f"expected {'0' * 32}" in message
    assert not (project / "data/raw" / TRAIN_IMAGES).exists()
    assert not [p for p in (project / "data/raw").iterdir() if p.name.startswith(".")]


def test_http_url_in_the_environment_variable(tmp_path, http_mirror, tiny_mirror):
    _, url = http_mirror
    result = fetch(tmp_path, tiny_mirror[1], [closed_port_url()], local_mirror=url)
    assert result.returncode == 0, result.stderr
    assert_fetched(tmp_path, tiny_mirror[0])


@pytest.mark.parametrize("key, value, message", [
    ("mirrors", [], "mirrors: must not be empty"),
    ("mirrors", ["ftp://x/"], "mirrors: item 0: must be an http://"),
    ("files", {"t10k-labels-idx1-ubyte.gz": "xyz"},
     "files.t10k-labels-idx1-ubyte.gz: must be 32 lowercase hex digits"),
    ("mirror", ["http://x/"], "mirror: unknown key (did you mean mirrors?)"),
])
def test_a_bad_sources_file_is_one_line_naming_the_key(tmp_path, tiny_mirror, key, value, message):
    folder, md5s = tiny_mirror
    write_mnist_sources(tmp_path, md5s)
    path = tmp_path / MNIST_SOURCES
    sources = yaml.safe_load(path.read_text())
    sources[key] = value
    path.write_text(yaml.safe_dump(sources))
    write_fetch_params(tmp_path)
    result = run_stage("fetch", tmp_path, env={"MNIST_MIRROR": str(folder)}, check=False)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{MNIST_SOURCES}: {message}")
    assert not (tmp_path / "data/raw").exists()
