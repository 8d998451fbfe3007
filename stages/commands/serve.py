"""Draw a digit in a browser and watch the model read it: a page served on this machine.

    mnist-serve [--model PATH] [--backend NAME] [--port N] [--host ADDRESS] [--verbose]
    python -m stages.commands.serve ...          (the same, without installing)

The page (serve_page.html beside this file, which loads nothing from the network) posts the
drawing, or an uploaded photo or scan, as the body of POST /predict. The server prepares it
with stages.lib.prepare.load_digit and answers with predict's own classify and seen_image, so a
drawing saved as a file gets the same answer from mnist-predict. Bad input gets a 4xx answer
with a one-line message, too many requests at once a 503, a bug a 500, and the server keeps
serving. Ctrl-C stops it.
"""

import argparse
import io
import json
import re
import sys
import threading
import warnings
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stages.commands import interrupt_on_ctrl_c
from stages.commands.predict import (
    add_model_options,
    classify,
    load_classifier,
    require_model,
    seen_image,
)
from stages.lib.prepare import ImageError, load_digit

PAGE = Path(__file__).with_name("serve_page.html")
MAX_UPLOAD_BYTES = 20 * 2**20  # a phone's photo is a few megabytes
# Room for a 24-megapixel camera's photo; larger ones are refused before they are decoded.
MAX_PIXELS = 25_000_000
DISCARD_CHUNK = 2**16  # an upload over the limit is read and dropped this much at a time
CLIENT_TIMEOUT_S = 30  # a client that stops sending mid-request frees its thread
# Memory stays bounded however many clients send at once: uploads held in memory (each up to
# MAX_UPLOAD_BYTES) and images being decoded and prepared (each a full-size decode, which
# benchmark/prepare_cost.py measures) are capped; a request beyond a cap is answered 503 with
# Retry-After. One user's page sends one drawing at a time.
MAX_UPLOADS = 8
MAX_PREPARING = 2
PREPARE_WAIT_S = 15  # an upload waits this long for a preparation slot before the 503
RETRY_AFTER_S = 2


class RequestError(Exception):
    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status, self.headers = status, headers


def busy(message):
    return RequestError(HTTPStatus.SERVICE_UNAVAILABLE, f"{message}: try again in a moment",
                        [("Retry-After", str(RETRY_AFTER_S))])


class DigitServer(ThreadingHTTPServer):
    # Ctrl-C does not wait for a client that holds a connection open without sending (a browser
    # opens spare connections ahead of need): its thread ends with the process.
    daemon_threads = True

    def __init__(self, address, page, verbose, max_uploads=MAX_UPLOADS,
                 max_preparing=MAX_PREPARING):
        super().__init__(address, DigitHandler)
        self.page, self.verbose = page, verbose
        self.model = None  # set before serving: the port is taken first, so a busy one fails fast
        # Keras does not document a model as safe to call from several threads at once.
        self.model_lock = threading.Lock()
        self.max_uploads = max_uploads
        self.uploads = threading.BoundedSemaphore(max_uploads)
        self.preparing = threading.BoundedSemaphore(max_preparing)


class DigitHandler(BaseHTTPRequestHandler):
    server_version = "mnist-serve"
    timeout = CLIENT_TIMEOUT_S
    # A request line that cannot be parsed is answered with a status line too (by default the
    # standard library answers it as HTTP/0.9 would: a page without status or headers).
    default_request_version = "HTTP/1.0"

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self.send_body(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif self.path == "/predict":
            self.send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, "send the image with POST")
        else:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no page at {self.path}")

    def do_POST(self):
        if self.path != "/predict":
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no page at {self.path}")
            return
        try:
            self.send_json(HTTPStatus.OK, self.predict())
        except RequestError as error:
            self.send_error_json(error.status, str(error), error.headers)
        except ImageError as error:
            self.send_error_json(HTTPStatus.UNPROCESSABLE_ENTITY, str(error))
        except TimeoutError:
            self.close_connection = True
            self.send_error_json(HTTPStatus.REQUEST_TIMEOUT, "the upload stopped arriving")

    def predict(self):
        """The answer to the upload, within the caps on uploads and preparations at once."""
        if not self.server.uploads.acquire(blocking=False):
            declared = self.headers.get("Content-Length", "")
            if re.fullmatch(r"[0-9]+", declared):
                self.discard(int(declared))  # so that a browser still sending sees the answer
            self.close_connection = True
            raise busy(f"busy with {self.server.max_uploads} other uploads")
        try:
            body = self.upload()
            if not self.server.preparing.acquire(timeout=PREPARE_WAIT_S):
                raise busy("busy preparing other images")
            try:
                digit = load_digit(io.BytesIO(body), max_pixels=MAX_PIXELS)
            finally:
                self.server.preparing.release()
        finally:
            self.server.uploads.release()
        with self.server.model_lock:
            answer = classify(self.server.model, [digit])[0]
        return {**answer, "seen": seen_image(digit).tolist()}

    def handle_one_request(self):
        """One request, whatever goes wrong in answering it: an unexpected error is a 500 with
        a one-line message (and a line on stderr), and the server serves on."""
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away: nobody to answer
        except Exception as error:  # noqa: BLE001 (the server must outlive any bug)
            self.close_connection = True
            request = f"{getattr(self, 'command', None)} {getattr(self, 'path', None)}"
            print(f"serve: {request}: {type(error).__name__}: {error}",
                  file=sys.stderr, flush=True)
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                                 f"the server failed on this request ({type(error).__name__})")

    def do_PUT(self):
        self.send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here")

    do_DELETE = do_PATCH = do_PUT

    def upload(self):
        """The request's body, whole, or a RequestError saying what is wrong with it."""
        declared = self.headers.get("Content-Length")
        if declared is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "the upload has no Content-Length")
        if not re.fullmatch(r"[0-9]+", declared):  # isdigit() takes "²", which int() refuses
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"Content-Length {declared[:40]!r} is not a size in bytes")
        length = int(declared)
        if length > MAX_UPLOAD_BYTES:
            # Read and dropped, not left unread: a browser still sending its body would see the
            # connection reset instead of this answer.
            self.discard(length)
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the file is {length / 2**20:.1f} MB, over the limit of "
                               f"{MAX_UPLOAD_BYTES / 2**20:g} MB")
        if length == 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the upload is empty")
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestError(HTTPStatus.BAD_REQUEST,
                               f"the upload ended after {len(body)} of {length} bytes")
        return body

    def discard(self, length):
        while length > 0:
            chunk = self.rfile.read(min(length, DISCARD_CHUNK))
            if not chunk:
                return
            length -= len(chunk)

    def send_error_json(self, status, message, headers=()):
        self.send_json(status, {"error": message}, headers)

    def send_json(self, status, payload, headers=()):
        self.send_body(status, json.dumps(payload), "application/json", headers)

    def send_body(self, status, text, content_type, headers=()):
        body = text.encode()
        self.send_response(status)
        for keyword, value in headers:
            self.send_header(keyword, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Serve a page on which to draw a digit and see the model read it.")
    add_model_options(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    parser.add_argument("--verbose", action="store_true",
                        help="log every request, and show the libraries' log lines and warnings")
    args = parser.parse_args(argv)
    require_model(args.model, "serve")
    if not args.verbose:
        warnings.simplefilter("ignore")

    interrupt_on_ctrl_c()
    try:
        server = DigitServer((args.host, args.port), PAGE.read_text(), args.verbose)
    except OSError as error:
        sys.exit(f"serve: cannot listen on {args.host}:{args.port} ({error.strerror or error})")
    try:
        server.model = load_classifier(args.model, args.backend, args.verbose, command="serve")
        host, port = server.server_address[:2]
        print(f"serve: http://{host}:{port}/ reads digits with {args.model} (Ctrl-C stops)",
              flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("serve: stopped", flush=True)
    return 0


def cli():
    sys.exit(main())


if __name__ == "__main__":
    cli()
