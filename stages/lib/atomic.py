"""Outputs appear whole or not at all: written under a temporary name, then renamed."""

import contextlib
import json
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target):
    """Yield a temporary path beside `target`; rename it to `target` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same folder, so the rename cannot cross file systems; same suffix, for writers that check it.
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.partial{target.suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(target):
    """Yield a new temporary folder beside `target`; it replaces `target` if the block succeeds."""
    target = Path(target)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    try:
        yield temporary
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temporary, target)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def write_json(target, data):
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(data, indent=2) + "\n")
