"""camlkit/runtime/threads.py: the OpenMP wait settings are made, respected and really reach OpenMP."""

import os
import subprocess
import sys
from pathlib import Path

import camlkit.runtime.threads
from camlkit.runtime.threads import BLOCK_TIME, SPIN_COUNT, WAIT_SETTINGS, share_cpu


def clean_environment():
    return {k: v for k, v in os.environ.items() if k not in WAIT_SETTINGS}


def test_sets_a_short_spin_when_nothing_is_chosen():
    env = clean_environment()
    made = share_cpu(env)
    assert made == {"GOMP_SPINCOUNT": SPIN_COUNT, "KMP_BLOCKTIME": BLOCK_TIME}
    assert int(SPIN_COUNT) < 300000  # shorter than libgomp's default spin
    assert {k: env[k] for k in made} == made


def test_a_setting_the_user_made_is_respected():
    for name, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000"), ("KMP_BLOCKTIME", "200")):
        env = {**clean_environment(), name: value}
        assert share_cpu(env) == {}
        assert env[name] == value and not any(k in env for k in WAIT_SETTINGS if k != name)


def test_the_settings_reach_openmp_when_made_before_torch():
    """libgomp prints its settings at start-up with OMP_DISPLAY_ENV=VERBOSE. The module is loaded
    from its file, without the camlkit package (whose imports start torch)."""
    path = Path(camlkit.runtime.threads.__file__)
    code = ("import importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('threads', {str(path)!r})\n"
            "threads = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(threads)\n"
            "threads.share_cpu()\nimport torch\ntorch.ones(4).sum()\n")
    env = {**clean_environment(), "OMP_DISPLAY_ENV": "VERBOSE"}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert f"GOMP_SPINCOUNT = '{SPIN_COUNT}'" in shown.stderr + shown.stdout


def test_importing_camlkit_applies_the_policy():
    env = {**clean_environment(), "OMP_DISPLAY_ENV": "VERBOSE"}
    shown = subprocess.run([sys.executable, "-c", "import camlkit, torch; torch.ones(4).sum()"],
                           env=env, capture_output=True, text=True, check=True)
    assert f"GOMP_SPINCOUNT = '{SPIN_COUNT}'" in shown.stderr + shown.stdout
