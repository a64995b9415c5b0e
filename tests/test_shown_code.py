"""The course shows the code that runs: every function a notebook displays with ``course.show``
is called by camlkit.train on a smoke run of CAML (a learner who reads or edits it is looking at
what training does, not at a copy)."""

import json
import re
import sys
from pathlib import Path

import pytest

from camlkit.config import make_config
from camlkit.train import train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SHOWN = re.compile(r"^course\.show\(([\w.]+)\)", re.M)


def shown_functions():
    """{"notebook: name": function} for every ``course.show(name)`` in the notebooks' code
    cells; each name is resolved with its notebook's own camlkit imports."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        imports = [line for cell in cells for line in cell.splitlines()
                   if re.match(r"(from camlkit[\w.]* import|import camlkit)", line)]
        names = {}
        exec("\n".join(imports), names)  # noqa: S102 (the notebook's own import lines)
        for cell in cells:
            for name in SHOWN.findall(cell):
                found[f"{path.stem}: {name}"] = eval(name, names)  # noqa: S307 (a dotted name)
    return found


def test_the_notebooks_show_the_method():
    shown = shown_functions()
    assert len(shown) >= 10, sorted(shown)
    for expected in ("02_vnet: losses.dice_loss", "05_occ: occ.omni_correlation", "05_occ: step.occ_part",
                     "05_occ: occ.MemoryBank.sample", "05_occ: occ.sample_unlabeled",
                     "06_caml_training: ramps.loss_weight"):
        assert expected in shown, expected


@pytest.mark.slow
def test_a_smoke_run_calls_every_function_the_notebooks_show(la_dir, tmp_path):
    called = set()

    def profile(frame, event, arg):
        if event == "call":
            called.add(frame.f_code)

    shown = shown_functions()
    cfg = make_config("smoke", method="caml", data=str(la_dir), out=str(tmp_path / "run"), progress=False)
    sys.setprofile(profile)
    try:
        train(cfg, evaluate=False)
    finally:
        sys.setprofile(None)
    never = [name for name, function in shown.items() if function.__code__ not in called]
    assert not never, f"shown by a notebook but not called by a smoke training run: {never}"
