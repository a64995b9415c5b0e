"""Packaging: environment.yml (conda users) asks for what pyproject.toml asks for, the licence,
version and citation are each written once and agree, and the README's commands exist."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda name where they differ
LEARNER_EXTRAS = ("notebooks",)  # what environment.yml holds besides the core dependencies


def _split(requirement):
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower(), spec.replace(" ", "")


def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def pip_requirements(extras=LEARNER_EXTRAS):
    reqs = list(project()["dependencies"])
    for extra in extras:
        reqs += project()["optional-dependencies"][extra]
    return {CONDA_NAMES.get(name, name): spec for name, spec in map(_split, reqs)}


def conda_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str)]
    return dict(_split(d) for d in deps), env


# ----------------------------------------------------------------------------- environment.yml
def test_environment_yml_matches_pyproject():
    conda, env = conda_requirements()
    assert conda.pop("python") == project()["requires-python"]
    conda.pop("pip")
    assert conda == pip_requirements()
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ["-e ."]  # camlkit itself, nothing behind conda's back


def test_every_python_named_meets_requires_python():
    from packaging.specifiers import SpecifierSet

    needed = SpecifierSet(project()["requires-python"])
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in needed  # the Python running the tests
    binder = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert binder.startswith("python-") and binder.removeprefix("python-") in needed
    assert "3.10" not in needed  # tests/ read pyproject.toml with tomllib, new in 3.11


def test_environment_yml_is_conda_forge_only_and_for_learners():
    conda, env = conda_requirements()
    assert env["channels"] == ["conda-forge", "nodefaults"]
    for tool in ("pytest", "nbval", "playwright", "medpy", "tensorboard"):
        assert tool not in conda, f"{tool} is for tests or optional, not every learner"
    extras = project()["optional-dependencies"]
    test_names = {_split(r)[0] for r in extras["test"]}
    assert {"pytest", "nbval", "playwright", "medpy"} <= test_names
    assert {_split(r)[0] for r in extras["notebooks"]} <= test_names  # the suite runs notebooks


def test_tensorboard_is_an_optional_extra():
    core = {_split(r)[0] for r in project()["dependencies"]}
    assert "tensorboard" not in core
    assert [_split(r)[0] for r in project()["optional-dependencies"]["tensorboard"]] == ["tensorboard"]


def test_torch_range_admits_the_cpu_build_used_here():
    import torch
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    spec = SpecifierSet(pip_requirements()["pytorch"])
    assert Version("2.13.0") in spec
    assert Version(torch.__version__.split("+")[0]) in spec
    assert Version(torch_pin()) in spec


def torch_pin():
    """The version in scripts/torch.txt, the one place torch is pinned."""
    lines = [line for line in (ROOT / "scripts" / "torch.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("torch=="), lines
    return lines[0].removeprefix("torch==")


def test_torch_is_pinned_in_one_place_that_the_others_read():
    assert re.fullmatch(r"\d+\.\d+\.\d+", torch_pin())
    for name in ("scripts/quickstart.sh", "scripts/test.sh", "binder/requirements.txt", "binder/postBuild",
                 "README.md", "environment.yml"):
        assert not re.search(r"torch==\d", (ROOT / name).read_text()), f"{name} pins torch itself"
    assert "grep -m1 '^torch==' scripts/torch.txt" in (ROOT / "scripts" / "quickstart.sh").read_text()
    assert "pip install -q -r scripts/torch.txt" in (ROOT / "scripts" / "test.sh").read_text()
    binder = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("-r ../scripts/torch.txt") for line in binder)


# ----------------------------------------------------------------------------- licence, version, citation
def test_license_file_matches_pyproject():
    assert project()["license"] == "MIT" and project()["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted, free of charge" in text


def test_version_is_written_once():
    import camlkit

    build = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project() and project()["dynamic"] == ["version"]
    assert build["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "camlkit.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", camlkit.__version__)
    init = (ROOT / "camlkit" / "__init__.py").read_text()
    assert f'__version__ = "{camlkit.__version__}"' in init  # a literal setuptools can read


def test_citation_cff_parses_and_cites_the_paper():
    import camlkit

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    for key in ("cff-version", "message", "title", "authors", "preferred-citation"):
        assert key in cff, key
    assert str(cff["version"]) == camlkit.__version__ and cff["license"] == project()["license"]
    paper = cff["preferred-citation"]
    assert paper["title"] == ("Correlation-Aware Mutual Learning for Semi-supervised Medical "
                              "Image Segmentation")
    assert paper["year"] == 2023 and "MICCAI" in paper["collection-title"]
    assert [a["family-names"] for a in paper["authors"]] == ["Gao", "Zhang", "Ma", "Li", "Zhang"]
    assert any(r.get("url") == "https://github.com/Herschel555/CAML" for r in cff["references"])


def test_project_urls_link_the_paper_and_the_authors_code():
    urls = project()["urls"]
    assert urls["Authors' code"] == "https://github.com/Herschel555/CAML"
    assert "2307.06312" in urls["Paper"]
    assert urls["Repository"].startswith("https://")


# ----------------------------------------------------------------------------- commands
def _torch_index(tmp_path, gpu: bool, **env):
    """What scripts/torch_index.sh chooses with (or without) an nvidia-smi on the PATH."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    if gpu:  # an executable called nvidia-smi is all the script looks for
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if k != "TORCH_INDEX_URL"}
    clean["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    out = subprocess.run(["bash", str(ROOT / "scripts" / "torch_index.sh")], capture_output=True,
                         text=True, env={**clean, **env}, check=True)
    return out.stdout.strip()


def test_quickstart_takes_the_cpu_wheel_without_a_gpu_and_the_default_build_with_one(tmp_path):
    import platform

    if platform.system() != "Linux" or any(
            (Path(d) / "nvidia-smi").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("needs Linux without nvidia-smi in /usr/bin or /bin")
    assert _torch_index(tmp_path / "cpu", gpu=False) == "https://download.pytorch.org/whl/cpu"
    assert _torch_index(tmp_path / "gpu", gpu=True) == ""
    by_hand = "https://download.pytorch.org/whl/cu126"
    assert _torch_index(tmp_path / "cpu", gpu=False, TORCH_INDEX_URL=by_hand) == by_hand
    assert _torch_index(tmp_path / "cpu", gpu=False, TORCH_INDEX_URL="") == ""  # default index
    script = (ROOT / "scripts" / "quickstart.sh").read_text()
    assert "bash scripts/torch_index.sh" in script
    assert "TORCH_INDEX_URL" in (ROOT / "README.md").read_text()
    out = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "quickstart.sh")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash scripts/test.sh"
    assert f"\n{command}\n" in readme
    lines = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert lines[-1] == command
    for line in lines[:-1]:  # besides the command, CI may only say where its copy of the LA data is
        assert re.fullmatch(r"if .*; then export CAMLKIT_DATA=[^;]*; fi", line), line


def _fake_venv_run(tmp_path, data_env, download_fails=False):
    """scripts/test.sh in a copy of the repository whose .venv/bin holds stand-ins that log their
    arguments (python, camlkit, ruff, lint-imports). Returns (exit code, output, the log's lines)."""
    import os

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("test.sh", "torch.txt"):
        (repo / "scripts" / name).write_text((ROOT / "scripts" / name).read_text())
    bin_dir, log = repo / ".venv" / "bin", tmp_path / "log"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "camlkit", "ruff", "lint-imports"):
        fails = "exit 3" if tool == "camlkit" and download_fails else "exit 0"
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $* CAMLKIT_DATA=$CAMLKIT_DATA" >> {log}\n{fails}\n')
        (bin_dir / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CAMLKIT_DATA"}
    if data_env is not None:
        env["CAMLKIT_DATA"] = str(data_env)
    out = subprocess.run(["bash", str(repo / "scripts" / "test.sh"), "-k", "x"], capture_output=True, text=True,
                         env=env, timeout=60)
    lines = log.read_text().splitlines() if log.exists() else []
    return out.returncode, out.stdout + out.stderr, lines


def test_test_sh_fetches_the_la_data_into_data_la_when_camlkit_data_is_unset(tmp_path):
    code, out, log = _fake_venv_run(tmp_path, None)
    assert code == 0, out
    data = tmp_path / "repo" / "data" / "LA"
    assert "camlkit download --dest data/LA CAMLKIT_DATA=" in log
    assert log[-1].startswith("python -m pytest tests notebooks") and log[-1].endswith(f"-k x CAMLKIT_DATA={data}")


def test_test_sh_uses_camlkit_data_when_set_and_fetches_nothing(tmp_path):
    code, out, log = _fake_venv_run(tmp_path, tmp_path / "mine")
    assert code == 0, out
    assert not any(line.startswith("camlkit ") for line in log)
    assert log[-1].endswith(f"CAMLKIT_DATA={tmp_path / 'mine'}")


def test_test_sh_stops_when_the_download_fails(tmp_path):
    code, out, log = _fake_venv_run(tmp_path, None, download_fails=True)
    assert code == 3, out
    assert log[-1].startswith("camlkit download") and not any("pytest" in line for line in log)


def test_camlkit_command_is_installed():
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "evaluate", "predict", "report"):
        assert command in out.stdout
