"""Shared fixtures for the Python test suite (oracles: nibabel, scipy, cc3d, SimpleITK, ...).

The library and CLI under test are the release builds of this checkout unless UPTAKE_LIB /
UPTAKE_BIN name others. `scripts/test.sh` builds them first.
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _artifact(env, name):
    path = pathlib.Path(os.environ.get(env, ROOT / "target" / "release" / name))
    if not path.exists():
        pytest.fail(f"{path} does not exist: run `cargo build --release` (or set {env})")
    return path


@pytest.fixture(scope="session")
def uptake_bin():
    """Path of the `uptake` command-line tool."""
    return _artifact("UPTAKE_BIN", "uptake")


@pytest.fixture(scope="session")
def uptake_lib():
    """Path of the shared library (libuptake.so)."""
    return _artifact("UPTAKE_LIB", "libuptake.so")


@pytest.fixture(scope="session")
def run_uptake(uptake_bin):
    """Runs the CLI with arguments; returns the CompletedProcess (check=False)."""

    def run(*args, check=True):
        proc = subprocess.run(
            [str(uptake_bin), *map(str, args)], capture_output=True, text=True
        )
        if check and proc.returncode != 0:
            pytest.fail(f"uptake {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def nibabel_data():
    """The real test images nibabel ships (nibabel/tests/data)."""
    import nibabel

    return pathlib.Path(nibabel.__file__).parent / "tests" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data next to the checkout (or UPTAKE_SHARED_DATA)."""
    path = pathlib.Path(os.environ.get("UPTAKE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"{path} is missing: set UPTAKE_SHARED_DATA")
    return path
