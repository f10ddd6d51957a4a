"""The suite's own hygiene, checked by conftest.py: a session that leaves anything in the temporary
folder fails and names it; one that leaves nothing removes its folder. Proven on small sessions."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


def session(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, Path]:
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(CONFTEST, suite / "conftest.py")
    (suite / "test_one.py").write_text(body)
    temp = tmp_path / "temp"  # the small session's /tmp, inside our own tmp_path
    temp.mkdir()
    # Without the plugins the suite leaves out too (pyproject.toml): each would cost the session a second.
    quiet = ["-p", "no:cacheprovider", "-p", "no:locust", "-p", "no:anyio", "-p", "no:hypothesispytest",
             "-p", "no:schemathesis"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *quiet, str(suite)],
                          cwd=suite, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TMPDIR": str(temp)}, stdin=subprocess.DEVNULL)
    return done, temp


LEAKS = """
import tempfile

def test_leaves_a_shop_folder():
    tempfile.mkdtemp(prefix="wdm-shop-")
"""

CLEAN = """
import tempfile

def test_cleans_up(tmp_path):
    with tempfile.TemporaryDirectory(prefix="wdm-shop-"):
        (tmp_path / "kept by pytest").write_text("")
"""


def test_a_session_that_leaves_a_folder_behind_fails_naming_it(tmp_path):
    done, temp = session(tmp_path, LEAKS)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "the suite left 1 entries in its temporary folder" in done.stdout and "wdm-shop-" in done.stdout
    [folder] = temp.iterdir()  # kept, to look into
    assert folder.name.startswith("wdm-tests-")


def test_a_clean_session_passes_and_removes_its_folder(tmp_path):
    done, temp = session(tmp_path, CLEAN)
    assert done.returncode == 0, done.stdout
    assert list(temp.iterdir()) == []
