"""Stage fetch: the four MNIST files into data/raw/, each verified whatever its source.

Sources are tried in order: $MNIST_MIRROR (a folder, or an http://, https:// or file:// URL) if
set, then the mirrors of stages/mnist_sources.yaml, which also holds each file's MD5. A source
that fails or serves the wrong content is skipped for the next one.
"""

import gzip
import hashlib
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field
from tqdm import tqdm

from stages.lib import params
from stages.lib.atomic import atomic_path

RAW_DIR = Path("data/raw")
SOURCES_FILE = Path("stages/mnist_sources.yaml")
CHUNK_SIZE = 1 << 20


class Params(params.Section):
    timeout: float = Field(gt=0, description="seconds without data before a download is abandoned")
    retries: int = Field(
        ge=0, description="extra attempts per mirror and file after a network error")


def _url(value):
    if not re.match(r"^(https?|file)://", value):
        raise ValueError("must be an http://, https:// or file:// URL")
    return value


def _md5(value):
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise ValueError("must be 32 lowercase hex digits")
    return value


class MnistSources(params.Section):
    """stages/mnist_sources.yaml: where MNIST comes from and the MD5 of each file's content."""

    mirrors: list[Annotated[str, AfterValidator(_url)]] = Field(min_length=1)
    files: dict[str, Annotated[str, AfterValidator(_md5)]] = Field(min_length=1)


class SourceError(Exception):
    """One source could not provide one file."""


def content_md5(path):
    """MD5 of a gzip file's decompressed content: archives differ between mirrors, content not."""
    digest = hashlib.md5()
    try:
        with gzip.open(path) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
    except (OSError, EOFError) as error:
        raise SourceError(f"not a valid gzip file ({error})") from None
    return digest.hexdigest()


def _local_folder(source):
    if source.startswith("file://"):
        return Path(urllib.request.url2pathname(source[len("file://") :]))
    if "://" not in source:
        return Path(source)
    return None


def _download(url, target, timeout, retries):
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
                size = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=size, unit="B", unit_scale=True, desc=url, leave=False) as bar:
                    while chunk := response.read(CHUNK_SIZE):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if size is not None and received != size:
                raise HTTPException(f"connection closed after {received} of {size} bytes")
            return
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == retries:
                raise SourceError(f"HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, HTTPException, OSError) as error:
            if attempt == retries:
                reason = getattr(error, "reason", None) or error
                raise SourceError(f"{type(error).__name__}: {reason}") from None
        time.sleep(attempt + 1)


def fetch_file(name, expected_md5, sources, timeout, retries):
    """Copy or download `name` from the first source whose content has the expected MD5."""
    failures = []
    for source in sources:
        try:
            with atomic_path(RAW_DIR / name) as temporary:
                folder = _local_folder(source)
                if folder is not None:
                    if not (folder / name).is_file():
                        raise SourceError(f"no file {folder / name}")
                    shutil.copyfile(folder / name, temporary)
                else:
                    _download(source.rstrip("/") + "/" + name, temporary, timeout, retries)
                found_md5 = content_md5(temporary)
                if found_md5 != expected_md5:
                    raise SourceError(f"content MD5 {found_md5}, expected {expected_md5}")
            print(f"fetch: {name} from {source}")
            return
        except (SourceError, OSError) as error:
            failures.append(f"{source}: {error}")
    raise SystemExit(f"fetch: {name}: no source worked; " + "; ".join(failures))


def main():
    fetch = params.load("fetch", Params)
    mnist = params.load(None, MnistSources, SOURCES_FILE)
    local_mirror = os.environ.get("MNIST_MIRROR")
    sources = ([local_mirror] if local_mirror else []) + mnist["mirrors"]
    for name, expected_md5 in mnist["files"].items():
        fetch_file(name, expected_md5, sources, fetch["timeout"], fetch["retries"])


if __name__ == "__main__":
    main()
