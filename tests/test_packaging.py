"""environment.yml (conda users) and pyproject.toml (pip) must ask for the same things."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda name where they differ


def _split(requirement):
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def pip_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out = {}
    for name, spec in map(_split, reqs):
        out[CONDA_NAMES.get(name, name)] = spec
    return out, project["requires-python"]


def conda_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    return dict(_split(d) for d in deps), env


def test_environment_yml_matches_pyproject():
    pip, requires_python = pip_requirements()
    conda, env = conda_requirements()
    assert conda.pop("python") == requires_python
    conda.pop("pip")
    assert conda == pip
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section  # camlkit itself


def test_torch_range_admits_the_cpu_build_used_here():
    import torch
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    spec = SpecifierSet(pip_requirements()[0]["pytorch"])
    assert Version("2.13.0") in spec
    assert Version(torch.__version__.split("+")[0]) in spec


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/test.sh"
    assert f"\n{command}\n" in readme
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))] == [command]


def test_camlkit_command_is_installed():
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "evaluate", "predict", "report"):
        assert command in out.stdout
