"""environment.yml and pyproject.toml name the same packages at the same lower bounds; the wheel,
installed (not editable) into a fresh virtual environment, works from any folder."""

import json
import os
import re
import shutil
import site
import subprocess
import sys
import venv
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


def test_wdm_notebooks_copies_them_out_and_overwrites_nothing(tmp_path, monkeypatch, wdm):
    from wdm_lib.shipped import FAULT_EXAMPLES, NOTEBOOKS

    monkeypatch.chdir(tmp_path)
    done = wdm("notebooks", "mine/notebooks")
    assert done.returncode == 0, done.stderr
    copies = {tmp_path / p for p in done.stdout.split()}  # each copy's path, as DIR was given
    assert copies == {tmp_path / "mine" / "notebooks" / p.name for p in NOTEBOOKS.glob("*.ipynb")} | {
        tmp_path / "mine" / "notebooks" / "faults" / p.name for p in FAULT_EXAMPLES.glob("*.yaml")}
    assert all(c.read_bytes() == (NOTEBOOKS / c.name if c.suffix == ".ipynb" else FAULT_EXAMPLES / c.name).read_bytes()
               for c in copies)

    # One file of the user's in the way: nothing copied, one sentence naming it, exit 2.
    again = tmp_path / "again"
    (again / "faults").mkdir(parents=True)
    (again / "faults" / "kubernetes.yaml").write_text("mine")
    refused = wdm("notebooks", str(again))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == (f"wdm: {again}: already holds faults/kubernetes.yaml; wdm notebooks overwrites nothing, "
                              f"so choose another folder or move those files away.\n")
    assert [p.relative_to(again) for p in again.rglob("*") if p.is_file()] == [Path("faults/kubernetes.yaml")]
    assert (again / "faults" / "kubernetes.yaml").read_text() == "mine"


def run(command: list, cwd: Path, env: dict | None = None, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == expect, (command, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the workbench's wheel, built and installed offline; its
    dependencies come from this environment's site-packages through a .pth (which does not run this
    environment's own .pth files, so the editable wdm_lib installed here stays out of it)."""
    where = tmp_path_factory.mktemp("wheel")
    source = where / "source"  # a build writes build/ and *.egg-info beside its sources: a copy's
    shutil.copytree(ROOT / "wdm_lib", source / "wdm_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--no-cache-dir"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", where / "dist", source], where)
    [wheel] = (where / "dist").glob("wdm_workbench-*.whl")
    env = where / "venv"
    venv.create(env, with_pip=False)
    [packages] = env.glob("lib/python*/site-packages")
    (packages / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([*pip, "--python", env / "bin" / "python", "install", "--no-deps", "--no-index", wheel], where)
    return env


@pytest.mark.long
def test_the_installed_wheel_reports_and_copies_its_notebooks_from_any_folder(installed, tmp_path):
    """A teaching assistant's install: from a team's folder, far from any checkout, a consistency run
    and its report, a report and a comparison of other runs, the notebooks copied out and executed
    there, and the shipped fault examples; everything made goes to that folder's reports/."""
    from synthetic_stress import make_stress_run

    team = tmp_path / "team07"
    team.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{installed / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # nbconvert's templates are data files of this environment's prefix, not of its site-packages.
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    python, wdm = installed / "bin" / "python", installed / "bin" / "wdm"

    where = run([python, "-c", "import wdm_lib.shipped as s; print(s.NOTEBOOKS)"], team, env).stdout.strip()
    assert Path(where).is_relative_to(installed), where  # the wheel's package, not this checkout's

    made = run([wdm, "consistency", "--n-users", 20, "--n-orders", 20, "--item-stock", 5, "--quiet", 0.2,
                "--seed", 1, "--report"], team, env)
    [consistency] = (team / "reports" / "runs").iterdir()
    assert (team / "reports" / f"{consistency.name}.html").is_file(), made.stdout
    assert (team / "reports" / "index.html").is_file()

    stress = make_stress_run(team / "reports" / "runs" / "20250101-000000-stress-abcd", rows=500, duration_s=5)
    run([wdm, "report", f"reports/runs/{stress.name}"], team, env)
    assert (team / "reports" / f"{stress.name}.html").is_file()
    again = make_stress_run(team / "reports" / "runs" / "20250101-000100-stress-efgh", rows=500, duration_s=5)
    compared = run([wdm, "compare", f"reports/runs/{stress.name}", f"reports/runs/{again.name}"], team, env)
    assert Path(compared.stdout.split("comparison: ")[1].strip()).parent == team / "reports"

    copied = run([wdm, "notebooks", "notebooks"], team, env).stdout.split()
    assert {Path(p).name for p in copied} >= {"consistency.ipynb", "stress.ipynb", "compare.ipynb",
                                              "embedded-shop.yaml", "docker-compose.yaml"}
    assert all((team / p).is_file() for p in copied)
    (team / "notebooks" / "stress.ipynb").write_text("{}")  # the user's edits: never overwritten
    refused = run([wdm, "notebooks", "notebooks"], team, env, expect=2)
    assert refused.stderr.count("\n") == 1 and "overwrites nothing" in refused.stderr
    assert (team / "notebooks" / "stress.ipynb").read_text() == "{}"

    # The copied notebook, run where it lies, finds its run from the working folder.
    run([python, "-m", "papermill", "notebooks/consistency.ipynb", "out.ipynb", "-p", "run_dir",
         f"reports/runs/{consistency.name}", "-k", "python3", "--no-progress-bar"], team, env)
    shown = json.loads((team / "out.ipynb").read_text())
    assert consistency.name in json.dumps([c.get("outputs") for c in shown["cells"]])

    # The fault examples as the README names them, from a folder without faults/ of its own.
    schedule = "from wdm_lib.faults.schedule import load_schedule; print(len(load_schedule('faults/kubernetes.yaml')))"
    assert int(run([python, "-c", schedule], tmp_path, env).stdout) >= 1
    assert not (ROOT / "reports" / "runs" / consistency.name).exists()


def test_every_readme_command_runs_without_an_activated_venv():
    # A new user from a clean clone has .venv/bin/ and no activated venv: a bare `wdm` is `command
    # not found` (the README says once that the bare names work after activating).
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    commands = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    bare = [c for c in commands for word in re.split(r"\s*(?:&&|\|\||;)\s*", c)
            if word.split(" ", 1)[0] in ("wdm", "papermill", "jupyter", "pytest", "pip", "python")]
    assert len(commands) > 40 and bare == []
