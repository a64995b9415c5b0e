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
import torch

import camlkit.runtime.threads
import camlkit.train
from camlkit.config import make_config
from camlkit.runtime.threads import (
    BLOCK_TIME,
    SPIN_COUNT,
    THREAD_SETTINGS,
    WAIT_SETTINGS,
    CpuSample,
    ThreadShare,
    busy_others,
    read_cpu_sample,
    share_cpu,
    thread_share,
    threads_for,
)


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


# ----------------------------------------------------------------------------- a fair share while training

@pytest.mark.parametrize("cpus, others, threads", [
    (2, 1.0, 1), (2, 0.1, 2), (2, 0.0, 2), (2, 0.6, 1), (2, 0.4, 2), (2, 2.0, 1), (2, 3.5, 1),
    (4, 1.0, 3), (4, 2.2, 2), (4, 0.0, 4), (1, 0.0, 1), (1, 1.0, 1)])
def test_threads_for_the_cpus_the_others_leave_free(cpus, others, threads):
    assert threads_for(cpus, others) == threads


def test_busy_others_is_the_busy_time_less_our_own_over_the_wall_time():
    before = CpuSample(wall=10.0, busy=100.0, own=5.0)
    # 2 s: the CPUs were busy 3.0 CPU-seconds, 1.0 of them ours -> others kept 1.0 CPU busy
    assert busy_others(before, CpuSample(wall=12.0, busy=103.0, own=6.0)) == pytest.approx(1.0)
    assert busy_others(before, CpuSample(wall=12.0, busy=104.0, own=5.2)) == pytest.approx(1.9)
    assert busy_others(before, CpuSample(wall=12.0, busy=100.5, own=6.0)) == 0.0  # ticks rounded below ours
    assert busy_others(before, before) == 0.0  # no time passed


def fake_samples(*samples):
    """A sample function giving ``samples`` (wall, busy, own) one by one."""
    queue = [CpuSample(*s) for s in samples]
    return lambda: queue.pop(0)


def test_thread_share_follows_a_neighbour_that_comes_and_goes():
    set_to = []
    share = ThreadShare(2, set_to.append, every=2.0, sample=fake_samples(
        (0, 0, 0),
        (1, 2, 2),  # 1 s: too soon to look again
        (2, 4, 4),  # 2 s, alone (the CPUs busy with our work only): 2 threads, nothing set
        (4, 8, 6),  # a neighbour keeps one CPU busy: 1 thread
        (5, 10, 7),  # too soon
        (6, 12, 8),  # the neighbour still there: 1 thread, nothing set again
        (8, 14.2, 10),  # it left (others 0.1): back to 2
    ))
    assert [share.poll() for _ in range(6)] == [2, 2, 1, 1, 1, 2]
    assert set_to == [1, 2]
    assert share.changes == [(4, 1), (8, 2)]


def test_thread_share_never_goes_above_the_count_it_started_with():
    set_to = []
    share = ThreadShare(1, set_to.append, sample=fake_samples((0, 0, 0), (2, 0, 0)), every=2.0)
    assert share.poll() == 1 and set_to == []


def test_thread_share_does_nothing_without_proc_stat():
    share = ThreadShare(2, lambda n: pytest.fail("set"), sample=lambda: None)
    assert share.poll() == 2


def test_read_cpu_sample_counts_the_busy_ticks_of_our_cpus(tmp_path):
    mine = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    outside = max(mine) + 1  # a CPU this process may not use: not counted
    # user nice system idle iowait irq softirq steal guest guest_nice: busy 1+2+3+6+7+8 = 27
    lines = ["cpu  999 999 999 999 999 999 999 999 0 0"]
    lines += [f"cpu{n} 1 2 3 4000 5000 6 7 8 0 0" for n in mine] + [f"cpu{outside} 90 90 90 0 0 0 0 0 0 0"]
    (tmp_path / "stat").write_text("\n".join(lines + ["intr 12345 0", "ctxt 99"]) + "\n")
    sample = read_cpu_sample(str(tmp_path / "stat"))
    assert sample.busy == pytest.approx(27 * len(mine) / os.sysconf("SC_CLK_TCK"))
    assert read_cpu_sample(str(tmp_path / "missing")) is None


def test_thread_share_applies_where_nobody_chose_the_count():
    env = {k: v for k, v in os.environ.items() if k not in THREAD_SETTINGS}
    assert isinstance(thread_share(True, "cpu", 2, print, environ=env), ThreadShare)
    assert thread_share(False, "cpu", 2, print, environ=env) is None  # --no-share-threads
    assert thread_share(True, "cuda", 2, print, environ=env) is None
    assert thread_share(True, "cpu", 1, print, environ=env) is None  # nothing to give up
    for name in THREAD_SETTINGS:
        assert thread_share(True, "cpu", 2, print, environ={**env, name: "2"}) is None


@pytest.mark.slow  # a short smoke run: 6 s
def test_the_training_loop_looks_once_per_iteration(tmp_path, la_dir, monkeypatch):
    """camlkit.train builds the ThreadShare from the config and the device, and polls it after
    every iteration (a recorder stands in for it)."""
    made, polls = [], []

    class Recorder:
        def poll(self):
            polls.append(1)

    def recorded(wanted, device_type, threads, set_threads):
        made.append((wanted, device_type, threads, set_threads))
        return Recorder()

    monkeypatch.setattr(camlkit.train, "thread_share", recorded)
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), iterations=3, progress=False,
                      device="cpu", share_threads=False)
    camlkit.train.train(cfg, evaluate=False)
    assert made == [(False, "cpu", torch.get_num_threads(), torch.set_num_threads)]
    assert len(polls) == 3


def test_thread_share_sets_torch_threads():
    before = torch.get_num_threads()
    try:
        share = ThreadShare(2, torch.set_num_threads, every=2.0,
                            sample=fake_samples((0, 0, 0), (2, 3, 1), (4, 5, 5)))
        assert share.poll() == 1 and torch.get_num_threads() == 1
        assert share.poll() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
