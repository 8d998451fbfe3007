"""The pinned environment: requirements/*.txt (uv pip compile, with hashes) agree with
pyproject.toml, and the README and CI install from them."""

import re
import tomllib

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Each lock and the requirements it pins: the project's, and the test extra's besides.
LOCKS = {"requirements/pipeline.txt": PYPROJECT["dependencies"],
         "requirements/test.txt": PYPROJECT["dependencies"]
         + PYPROJECT["optional-dependencies"]["test"]}
SUPPORTED_PYTHONS = ["3.10", "3.11", "3.12", "3.13"]  # requires-python
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)(?: ; ([^\\]+?))? \\$", re.M)


def pins(lock):
    """{name: [(version, marker or None)]} of a lock file."""
    found = {}
    for name, version, marker in PIN.findall((ROOT / lock).read_text()):
        found.setdefault(canonicalize_name(name), []).append((version, marker or None))
    return found


def pinned_for(lock_pins, name, python):
    """The version a Python version installs from the lock, or None."""
    environment = {"python_version": python, "python_full_version": f"{python}.0",
                   "sys_platform": "linux", "platform_system": "Linux",
                   "platform_machine": "x86_64", "implementation_name": "cpython",
                   "platform_python_implementation": "CPython", "os_name": "posix"}
    versions = [version for version, marker in lock_pins.get(name, [])
                if marker is None or Marker(marker).evaluate(environment)]
    assert len(versions) <= 1, (name, python, versions)
    return versions[0] if versions else None


@pytest.mark.parametrize("lock", sorted(LOCKS))
@pytest.mark.parametrize("python", SUPPORTED_PYTHONS)
def test_the_lock_pins_every_requirement_to_a_version_pyproject_allows(lock, python):
    lock_pins = pins(lock)
    text = (ROOT / lock).read_text()
    for requirement in map(Requirement, LOCKS[lock]):
        version = pinned_for(lock_pins, canonicalize_name(requirement.name), python)
        assert version is not None, f"{requirement.name} is not in {lock} for Python {python}"
        assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    # Hash-checking mode needs every pin hashed: each pin line goes on to its hashes.
    requirement_lines = [line for line in text.splitlines() if line[:1].isalnum()]
    assert len(requirement_lines) == len(PIN.findall(text))
    assert text.count("--hash=sha256:") > len(requirement_lines)


def test_the_locks_direct_requirements_are_pyprojects():
    """A requirement added to or dropped from pyproject.toml leaves the lock stale: the packages
    the lock has for the project itself (uv's `# via mnist-dvc (pyproject.toml)`) are exactly
    the requirements it names."""
    for lock, requirements in LOCKS.items():
        direct = {canonicalize_name(block.split("==", 1)[0])
                  for block in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text())
                  if re.search(r"#(?: via|  ) mnist-dvc \(pyproject\.toml\)", block)}
        assert direct == {canonicalize_name(Requirement(text).name) for text in requirements}


def test_the_readme_and_ci_install_from_the_locks():
    readme = (ROOT / "README.md").read_text()
    for lock in LOCKS:
        assert f"pip install -q --require-hashes -r {lock} && pip install -q --no-deps -e ." in readme
    assert "-r requirements/test.txt" in (ROOT / ".ci/run").read_text().splitlines()[-1]
