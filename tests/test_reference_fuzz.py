"""Schemathesis against the reference shop, single process and three services: every operation of its /openapi.json, with values at
and beyond the limits it states, must get an answer that the description allows (never a 5xx,
never a valid request refused or an invalid one accepted). Bounded (examples per operation) and
deterministic, so it runs in the suite in seconds."""

import json
import subprocess
import sys
import urllib.request

import pytest

from wdm_lib.reference.store import MAX_BATCH

# A batch init of MAX_BATCH rows is valid and takes the shop minutes. So valid requests are
# generated from a description whose batches are at most FUZZ_BATCH, and invalid ones (a batch of
# MAX_BATCH + 1 among them) from the description the shop serves.
FUZZ_BATCH = 1000
# Random examples per operation in the fuzzing phase, beside the coverage phase's values at and
# beyond every limit: 10 make some 260 cases per run, in 2.7 CPU-s; 20 made 460, in 3.6.
EXAMPLES_PER_OPERATION = 10


def capped_batches(spec: dict) -> dict:
    capped = json.loads(json.dumps(spec))
    names = []
    for path, ops in capped["paths"].items():
        for op in ops.values():
            for param in op["parameters"]:
                if "batch_init" in path and param["name"] == "n":
                    assert param["schema"]["maximum"] == MAX_BATCH
                    param["schema"]["maximum"] = FUZZ_BATCH
                    names.append(path)
    assert len(names) == 3, names
    return capped


# The tests on the three services run in one worker, which starts them once (pyproject.toml: loadgroup).
@pytest.fixture(scope="module", params=["single", pytest.param("services", marks=pytest.mark.xdist_group("services"))])
def target(request):
    """The single process, and the three services behind their gateway: one API, one description."""
    return request.getfixturevalue("shop" if request.param == "single" else "services")


@pytest.fixture(scope="module")
def served_spec(target) -> dict:
    with urllib.request.urlopen(f"{target.base_url}/openapi.json", timeout=10) as r:
        return json.load(r)


@pytest.mark.long
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_finds_nothing(target, served_spec, tmp_path, mode):
    spec = capped_batches(served_spec) if mode == "positive" else served_spec
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    # The stateful phase chains valid requests whatever the mode: only with the capped description.
    phases = "examples,coverage,fuzzing,stateful" if mode == "positive" else "examples,coverage,fuzzing"
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", str(tmp_path / "openapi.json"), "--url", target.base_url,
         "--mode", mode, "--phases", phases, "--checks", "all", "--max-examples", str(EXAMPLES_PER_OPERATION),
         "--generation-deterministic", "--workers", "1", "--no-color", "--request-timeout", "30"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
    assert f"Operations:       {len(spec['paths'])} selected / {len(spec['paths'])} total" in done.stdout
