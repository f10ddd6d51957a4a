"""environment.yml and pyproject.toml name the same packages at the same lower bounds."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def requirement(spec: str) -> tuple[str, str]:
    name, bound = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip()).groups()
    return name.lower().replace("_", "-"), bound.replace(" ", "")


def test_environment_yml_and_pyproject_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(requirement(s) for s in env["dependencies"] if isinstance(s, str))
    assert conda.pop("python") == ">=" + project["requires-python"].lstrip(">=")
    assert conda.pop("pip") == ""
    assert conda == wanted
    pip_section = next(s["pip"] for s in env["dependencies"] if isinstance(s, dict))
    assert pip_section == ["--editable ."]
