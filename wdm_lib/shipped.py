"""The files the package ships beside its code: the report notebooks and the example fault
schedules. Found through the package, never beside a checkout, so an installed workbench works from
any folder; copied out (`wdm notebooks DIR`) for a user to open in JupyterLab and edit."""

from __future__ import annotations

import shutil
from pathlib import Path

from wdm_lib.errors import WorkbenchError

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
FAULT_EXAMPLES = Path(__file__).resolve().parent / "faults" / "examples"
# The folder name under which the examples are copied out, and by which a relative --faults path
# names one when the working folder holds no such file (`--faults faults/embedded-shop.yaml`).
FAULTS_FOLDER = "faults"


def fault_example(path: Path) -> Path | None:
    """The shipped example a relative path faults/<name>.yaml names, or None."""
    if path.is_absolute() or path.parts[:-1] != (FAULTS_FOLDER,):
        return None
    example = FAULT_EXAMPLES / path.name
    return example if example.is_file() else None


def copy_out(folder: str | Path) -> list[Path]:
    """Copy the notebooks into folder and the fault examples into folder/faults/ (made as needed),
    and return the copies. Nothing is overwritten: if any copy would replace a file, nothing is
    copied and the sentence says which files are in the way."""
    folder = Path(folder).expanduser()
    plan = [(nb, folder / nb.name) for nb in sorted(NOTEBOOKS.glob("*.ipynb"))]
    plan += [(ex, folder / FAULTS_FOLDER / ex.name) for ex in sorted(FAULT_EXAMPLES.glob("*.yaml"))]
    there = [copy for _, copy in plan if copy.exists() or copy.is_symlink()]
    if there:
        names = ", ".join(str(c.relative_to(folder)) for c in there)
        raise WorkbenchError(f"{folder}: already holds {names}; wdm notebooks overwrites nothing, so choose "
                             f"another folder or move those files away.")
    for original, copy in plan:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(original, copy)
    return [copy for _, copy in plan]
