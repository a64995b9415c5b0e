"""camlkit/runtime/threads.py: the OpenMP wait settings are made, respected and really reach
OpenMP through the entry points that apply them (the command line, a launched run); in a
notebook kernel, where torch is imported first, a CPU is left free instead. ``import camlkit``
itself changes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import camlkit.runtime.threads
from camlkit.runtime.threads import BLOCK_TIME, SPIN_COUNT, THREAD_SETTINGS, WAIT_SETTINGS, share_cpu


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["camlkit.cli", "camlkit.lab.process"])
def test_the_command_line_and_a_launched_run_apply_the_policy(entry):
    """``camlkit ...`` and the child a launch starts (camlkit.lab.process) set the short spin
    before torch loads; libgomp prints what it read when torch loads it."""
    env = {**clean_environment(), "OMP_DISPLAY_ENV": "VERBOSE"}
    shown = subprocess.run([sys.executable, "-m", entry, "train", "--help"], env=env, capture_output=True,
                           text=True, check=True)
    assert f"GOMP_SPINCOUNT = '{SPIN_COUNT}'" in shown.stderr + shown.stdout


@pytest.mark.slow
def test_importing_camlkit_changes_nothing():
    code = ("import os, torch; e = dict(os.environ); t = torch.get_num_threads(); import camlkit\n"
            "camlkit.CAMLNet, camlkit.pretrained  # the names at the top load without a change either\n"
            "assert dict(os.environ) == e and torch.get_num_threads() == t, 'changed'")
    env = {k: v for k, v in clean_environment().items() if k not in THREAD_SETTINGS}
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr


# ----------------------------------------------------------------------------- torch imported first

def torch_first(then, **settings):
    """Run ``then`` in a fresh Python that runs on two CPUs and imports torch before camlkit, as
    a notebook does; returns (torch's threads before, what ``then`` printed as JSON)."""
    code = ("import json, os, sys\n"
            "os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])\n"
            "import torch\nbefore = torch.get_num_threads()\n"
            f"{then}\n")
    env = {k: v for k, v in clean_environment().items() if k not in THREAD_SETTINGS}
    shown = subprocess.run([sys.executable, "-c", code], env={**env, **settings}, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout.splitlines()[-1])


def two_cpus():
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to run on")


@pytest.mark.slow
def test_a_notebook_kernel_leaves_a_cpu_free():
    two_cpus()
    shown = torch_first("from camlkit import course\ncourse.share_cpu()\n"
                        "print(json.dumps([before, torch.get_num_threads(), os.environ.get('GOMP_SPINCOUNT')]))")
    before, after, spin = shown
    if before < 2:
        pytest.skip(f"torch starts with {before} thread here: nothing to spare")
    assert after == 1  # one thread fewer than the two CPUs
    assert spin == SPIN_COUNT  # for the processes it starts


@pytest.mark.slow
def test_after_torch_the_processes_a_kernel_starts_still_spin_briefly():
    """What a kernel's own subprocesses inherit: the short spin, read by their own OpenMP."""
    two_cpus()
    child = "import torch; torch.ones(4).sum()"
    shown = torch_first("from camlkit import course\nimport subprocess\ncourse.share_cpu()\n"
                        f"out = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True)\n"
                        "print(json.dumps(out.stdout + out.stderr))", OMP_DISPLAY_ENV="VERBOSE")
    assert f"GOMP_SPINCOUNT = '{SPIN_COUNT}'" in shown


@pytest.mark.slow
def test_after_torch_a_choice_of_the_user_is_left_alone():
    two_cpus()
    report = "from camlkit import course\ncourse.share_cpu()\nprint(json.dumps([before, torch.get_num_threads()]))"
    assert torch_first(report, OMP_NUM_THREADS="2") == [2, 2]  # the user chose the count
    before, after = torch_first(report, OMP_WAIT_POLICY="ACTIVE")  # the user chose how they wait
    assert after == before


@pytest.mark.slow
def test_the_policy_before_torch_keeps_every_thread():
    """The short spin reached OpenMP (test above; what the command line does): no thread needs
    to be given up."""
    two_cpus()
    code = ("import os; os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])\n"
            "from camlkit.runtime.threads import share_cpu; share_cpu()\nimport torch\nprint(torch.get_num_threads())")
    env = {k: v for k, v in clean_environment().items() if k not in THREAD_SETTINGS}
    alone = subprocess.run([sys.executable, "-c", code.replace("share_cpu()", "")], env=env,
                           capture_output=True, text=True, check=True)
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(shown.stdout) == int(alone.stdout)


@pytest.mark.slow  # a short training run beside a busy process
def test_the_short_run_of_a_notebook_kernel_trains_with_a_cpu_free(tmp_path):
    """camlkit.lab.runs.train_short in a process that imported torch first (a notebook
    kernel): the training (camlkit.train.train as runs calls it, replaced here by a probe) runs on one thread of two."""
    two_cpus()
    shown = torch_first("from camlkit.lab import runs\nseen = []\n"
                        "runs.train = lambda cfg, **kw: seen.append(torch.get_num_threads())\n"
                        f"runs.train_short('smoke', {str(tmp_path / 'LA')!r}, root={str(tmp_path / 'runs')!r})\n"
                        "print(json.dumps([before, seen]))")
    before, seen = shown
    if before < 2:
        pytest.skip(f"torch starts with {before} thread here: nothing to spare")
    assert seen == [1]
