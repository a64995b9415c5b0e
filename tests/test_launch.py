"""camlkit.lab.launch with real training processes at smoke size on the real LA data
(tests/conftest.py's la_dir: $CAMLKIT_DATA, else the shared folder)."""

import csv
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camlkit.config import default_run_dir, from_dict, make_config
from camlkit.errors import CamlkitError
from camlkit.lab import launch, process


@pytest.fixture(scope="module")
def data(la_dir):
    return str(Path(la_dir).resolve())


def _status_elsewhere(run_dir):
    """Attach from a fresh Python process (as after a kernel restart); its status as a dict."""
    code = ("import json, sys; from camlkit.lab import launch; s = launch.attach(sys.argv[1]).status();"
            "print(json.dumps({'state': s.state, 'iteration': s.iteration, 'total': s.total}))")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _wait_for(predicate, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_launch_attach_stop_resume_finish(tmp_path, data):
    # enough iterations that the stop lands mid-run; checkpoints every 2 so there is one to resume
    cfg = make_config("smoke", method="caml", data=data, iterations=100, checkpoint_every=2)
    run = launch.launch(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "process.json").read_text())
    assert record["pid"] == run.pid
    # the child trains the run's config.json (written before it started), not options rebuilt from it
    config_json = tmp_path / "run" / "config.json"
    assert record["command"][3:6] == ["train", "--config", str(config_json)]
    assert from_dict(json.loads(config_json.read_text())) == cfg.resolved()

    _wait_for(lambda: (tmp_path / "run" / "checkpoints" / "last.pth").exists()
              and launch.read_rows(tmp_path / "run" / "log.csv"))
    seen = _status_elsewhere(tmp_path / "run")
    assert seen["state"] == "running" and 1 <= seen["iteration"] < 100 and seen["total"] == 100

    status = launch.attach(tmp_path / "run").stop()
    assert status.state == "stopped" and status.iteration < 100
    assert _status_elsewhere(tmp_path / "run")["state"] == "stopped"
    assert not (tmp_path / "run" / "model_final.pth").exists()

    resumed = launch.attach(tmp_path / "run").resume()
    assert resumed.pid != run.pid and "--resume" in resumed.record["command"]
    status = resumed.wait(timeout_s=300)
    assert status.state == "finished", status
    assert status.iteration == 100 and (tmp_path / "run" / "model_final.pth").exists()
    rows = launch.read_rows(tmp_path / "run" / "log.csv")
    assert [r["iteration"] for r in rows] == list(range(100))  # no gap, no repeat
    assert "--resume" in (tmp_path / "run" / "train.out").read_text()

    # a finished run, attached from elsewhere; resuming it is refused
    assert _status_elsewhere(tmp_path / "run") == {"state": "finished", "iteration": 100,
                                                   "total": 100}
    # the notebook view of a finished run: one draw, then back; its summary as a table
    pytest.importorskip("ipywidgets")
    assert launch.watch(launch.attach(tmp_path / "run")).state == "finished"
    assert "| Dice (%) |" in launch.summary_markdown(tmp_path / "run").data
    with pytest.raises(CamlkitError, match="finished; nothing to resume"):
        launch.attach(tmp_path / "run").resume()
    with pytest.raises(CamlkitError, match="already holds a run"):
        launch.launch(cfg, tmp_path / "run")


@pytest.mark.slow  # a launched run
def test_a_failing_run_is_reported_failed_with_its_error(tmp_path):
    run = launch.launch({"preset": "smoke", "data": str(tmp_path / "no-data")}, tmp_path / "run")
    status = run.wait(timeout_s=120)
    assert status.state == "failed"
    assert any("no-data" in line for line in status.tail), status.tail


def test_the_pid_of_another_process_is_not_the_run(tmp_path):
    # a process.json whose pid lives but is not that run (a recycled pid): not running
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "process.json").write_text(json.dumps(
        {"pid": os.getpid(), "start_ticks": 1, "command": ["python", "-m", "camlkit.cli", "train",
                                                            "--out", str(run_dir)],
         "host": socket.gethostname(), "iterations": 6}))
    assert launch.attach(run_dir).status().state == "failed"


def test_attach_to_a_folder_without_a_run_points_to_start_only(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CamlkitError, match=r"no run to attach to .*start\(config, run_dir\)") as err:
        launch.attach(tmp_path)
    assert "attach(" not in str(err.value)


def test_config_round_trips_through_command_line_options(data):
    cfg = make_config("quick", method="mcnet", labeled=4, seed=7, data=data, lr=0.1,
                      patch_size=(32, 32, 16), amp=True, progress=False,
                      **{"step.similarity": "cosine", "model.n_filters": 4})
    args = launch.config_to_args(cfg)
    assert launch._as_config(args) == cfg
    for words in (["--step.similarity", "cosine"], ["--model.n_filters", "4"], ["--amp"],
                  ["--patch-size", "32,32,16"], ["--method", "mcnet"]):
        assert " ".join(words) in " ".join(args), (words, args)
    assert not any(w.startswith(("--step.use_", "--model.use_cma", "--step.ramp")) for w in args)
    assert launch._as_config({"preset": "quick", "method": "mcnet", "labeled": 4, "seed": 7,
                              "data": data, "lr": 0.1, "patch_size": (32, 32, 16), "amp": True,
                              "progress": False, "step.similarity": "cosine",
                              "model.n_filters": 4}) == cfg
    assert default_run_dir(cfg, "somewhere") == Path("somewhere/quick-mcnet-4L-seed7")


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_curves_of_a_run_folder_show_each_loss_part_and_the_final_metrics(tmp_path):
    header = "iteration,L,L_s,l_c,l_o,lambda_c,lambda_o,lr,seconds"
    lines = [header] + [f"{i},{1 - i / 10},{0.5 - i / 40},{0.01 * i},{3.0},{i / 10},{i / 200},0.01,{i}"
                        for i in range(5)] + ["5,0.4,0.3"]  # a row still being written
    (tmp_path / "log.csv").write_text("\n".join(lines))
    running = launch.curves(tmp_path)
    assert len([t for t in _titles(running) if t]) == 5  # L, L_s, l_c, l_o, the two lambdas
    assert "Dice" not in _texts(running)
    (tmp_path / "summary.json").write_text(json.dumps({"cases": 2, "dice": [0.8, 0.1],
                                                      "jaccard": [0.7, 0.1], "hd95": [9.0, 1.0],
                                                      "asd": [2.0, 0.5]}))
    assert "Dice 80.00 ± 10.00 %" in _texts(launch.curves(tmp_path))


# ----------------------------------------------------------------------------- a run of the command line

def _train_cli(cfg, run_dir, *extra):
    """``camlkit train`` for ``cfg`` as a user types it (what scripts/quickstart.sh runs)."""
    command = [sys.executable, "-m", "camlkit.cli", "train", *launch.config_to_args(cfg),
               "--out", str(run_dir), "--quiet", *extra]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.slow
def test_notebook_6_shows_a_run_finished_on_the_command_line(tmp_path, data):
    # notebook 6's smoke config, trained first from the command line (as after the quickstart)
    cfg = dataclasses.replace(make_config("smoke", method="caml", labeled=None, data=data),
                              iterations=12)
    run_dir = default_run_dir(cfg, tmp_path / "runs")
    _train_cli(cfg, run_dir)
    # the notebook's cells: start, watch, attach, stop, resume-if-stopped, watch, the summary
    run = launch.start(cfg, run_dir)
    assert run._process is None and not (run_dir / "process.json").exists()  # nothing launched
    pytest.importorskip("ipywidgets")
    assert launch.watch(run, until_iteration=10).state == "finished"
    status = launch.attach(run_dir).status()
    assert (status.state, status.iteration, status.total) == ("finished", 12, 12)
    assert run.stop().state == "finished" and launch.watch(run).state == "finished"
    summary = json.loads((run_dir / "summary.json").read_text())
    dice = [float(row["dice"]) for row in csv.DictReader(open(run_dir / "cases.csv"))]
    assert summary["cases"] == len(dice) == 2  # the summary is the mean of the case rows
    assert summary["dice"][0] == pytest.approx((dice[0] + dice[1]) / 2, abs=1e-12)
    assert "| Dice (%) |" in launch.summary_markdown(run_dir).data
    assert not (run_dir / "process.json").exists() and not (run_dir / "train.out").exists()
    # another setting than the folder's run: one line naming it, pointing nowhere circular
    other = dataclasses.replace(cfg, lr=0.5)
    with pytest.raises(CamlkitError, match=r"holds a run of other settings \(lr=0.01 there, 0.5 asked\)"):
        launch.start(other, run_dir)
    with pytest.raises(CamlkitError, match="already holds a run"):
        launch.launch(cfg, run_dir)


@pytest.mark.slow
def test_a_command_line_run_stopped_mid_way_is_resumable_and_start_resumes_it(tmp_path, data):
    cfg = make_config("smoke", data=data, iterations=100, checkpoint_every=2)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "camlkit.cli", "train", *launch.config_to_args(cfg),
               "--out", str(run_dir), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (run_dir / "checkpoints" / "last.pth").exists()
                  and len(launch.read_rows(run_dir / "log.csv")) >= 2)
        seen = launch.attach(run_dir)
        assert seen.status().state == "running" and seen.status().total == 100
        assert seen.pid == process.pid
        status = seen.stop()  # SIGINT to the command-line process, as Ctrl-C
        assert process.wait(timeout=60) == 130  # (its lock is released just before it exits)
    finally:
        if process.poll() is None:
            process.kill()
    assert status.state == "stopped" and status.resumable and 0 < status.iteration < 100
    assert "(resumable from checkpoints/last.pth)" in status.line()
    run = launch.start(cfg, run_dir)  # stopped: it resumes, now in the background
    assert run._process is not None and "--resume" in run.record["command"]
    status = run.wait(timeout_s=300)
    assert (status.state, status.iteration, status.total) == ("finished", 100, 100), status
    assert [r["iteration"] for r in launch.read_rows(run_dir / "log.csv")] == list(range(100))


@pytest.mark.slow
def test_overwrite_leaves_nothing_of_the_launched_run_it_replaces(tmp_path, data):
    run_dir = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old = process.child_command(run_dir)
    run_dir.mkdir()
    (run_dir / "process.json").write_text(json.dumps(
        {"pid": dead.pid, "command": old, "host": socket.gethostname(), "iterations": 400,
         "stop_requested": 1.0}))
    (run_dir / "train.out").write_text("# the old run's output\n")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "iter25_keep.pth").write_text("mine")
    cfg = make_config("smoke", data=data, iterations=4, eval_cases=1)
    _train_cli(cfg, run_dir, "--overwrite")
    assert not (run_dir / "process.json").exists() and not (run_dir / "train.out").exists()
    assert (run_dir / "checkpoints" / "iter25_keep.pth").read_text() == "mine"
    status = launch.attach(run_dir).status()
    assert (status.state, status.iteration, status.total) == ("finished", 4, 4)


# ----------------------------------------------------------------------------- signals, races, liveness

def _end_run(run_dir):
    """Kill the process group process.json names, if it still runs (cleanup after a test)."""
    try:
        record = json.loads((Path(run_dir) / "process.json").read_text())
    except (OSError, ValueError):
        return
    if process.is_alive(record):
        os.killpg(record["pid"], 9)
        _wait_for(lambda: not process.is_alive(record), timeout_s=60)


# a parent that ignores SIGINT (a background job of a non-interactive shell, a service)
IGNORING_PARENT = """
import json, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
from camlkit.lab import launch
from camlkit.config import make_config
run = launch.launch(make_config("smoke", data=sys.argv[1], iterations=5000), sys.argv[2])
while len(launch.read_rows(run.run_dir / "log.csv")) < int(sys.argv[3]) and run.is_running():
    time.sleep(0.05)
status = run.stop(timeout_s=60)
print(json.dumps({"state": status.state, "iteration": status.iteration, "total": status.total}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("rows", [2, 0])  # 0: stopped at once, while the run's Python starts
def test_a_parent_that_ignores_sigint_can_stop_its_run(tmp_path, data, rows):
    run_dir = tmp_path / "run"
    try:
        out = subprocess.run([sys.executable, "-c", IGNORING_PARENT, data, str(run_dir), str(rows)],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        assert status["state"] == "stopped" and rows <= status["iteration"] < status["total"] == 5000
    finally:
        _end_run(run_dir)


# calls launch.start on argv[2] as soon as the file argv[3] exists; says what it got
STARTER = """
import json, sys, time
from pathlib import Path
from camlkit.lab import launch
from camlkit.config import make_config
from camlkit.errors import CamlkitError
cfg = make_config("smoke", data=sys.argv[1], iterations=5000)
print("ready", flush=True)
while not Path(sys.argv[3]).exists():
    time.sleep(0.001)
try:
    run = launch.start(cfg, sys.argv[2])
    print(json.dumps({"pid": run.pid, "spawned": run._process is not None}))
except CamlkitError as err:
    print(json.dumps({"error": str(err)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_two_starts_at_once_spawn_one_run(tmp_path, data, attempt):
    run_dir, go = tmp_path / "run", tmp_path / "go"
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, data, str(run_dir), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    try:
        assert [s.stdout.readline().strip() for s in starters] == ["ready", "ready"]
        go.touch()
        replies = []
        for starter in starters:
            out, err = starter.communicate(timeout=120)
            assert starter.returncode == 0, err
            replies.append(json.loads(out))
        winners = [r for r in replies if r.get("spawned")]
        assert len(winners) == 1, replies
        (loser,) = [r for r in replies if r is not winners[0]]
        if "error" in loser:  # it lost the claim: one line naming the holder
            assert "in use by process" in loser["error"] and "\n" not in loser["error"]
        else:  # it came after the winner's process.json: attached to the same run
            assert loser == {"pid": winners[0]["pid"], "spawned": False}
        record = json.loads((run_dir / "process.json").read_text())
        assert record["pid"] == winners[0]["pid"] and process.is_alive(record)
        headers = [line for line in (run_dir / "train.out").read_text().splitlines() if line.startswith("# ")]
        assert len(headers) == 1, headers
    finally:
        for starter in starters:
            starter.kill()
        _end_run(run_dir)


def _pid_of_another_user():
    """(a running process of another user, the command prefix under which this process may not
    signal it). Root may signal anyone: a `sleep` as nobody, checked without CAP_KILL."""
    if os.geteuid() != 0:
        return 1, [], None
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: cannot be denied the right to signal")
    sleeper = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "sleep", "120"])
    _wait_for(lambda: os.stat(f"/proc/{sleeper.pid}").st_uid == 65534)  # setpriv has exec'd
    return sleeper.pid, ["setpriv", "--bounding-set=-kill", "--inh-caps=-all"], sleeper


def test_a_process_of_another_user_is_alive_to_launch_as_to_files(tmp_path):
    pid, prefix, sleeper = _pid_of_another_user()
    try:
        record = {"pid": pid, "start_ticks": process.start_ticks(pid),
                  "host": socket.gethostname()}
        code = ("import json, os, sys\nfrom camlkit import files\nfrom camlkit.lab import process\n"
                "r = json.loads(sys.argv[1])\n"
                "try:\n    os.kill(r['pid'], 0); denied = False\n"
                "except PermissionError:\n    denied = True\n"
                "print(json.dumps([denied, files.pid_alive(r['pid']), process.is_alive(r)]))")
        out = subprocess.run(prefix + [sys.executable, "-c", code, json.dumps(record)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == [True, True, True]  # denied, yet alive by both rules
    finally:
        if sleeper is not None:
            sleeper.kill()
            sleeper.wait()


def test_training_seconds_add_up_the_processes_of_a_resumed_run():
    rows = [{"seconds": s} for s in (1.0, 2.0, 3.0, 0.5, 1.5, 0.2)]  # stopped twice, resumed twice
    assert launch.training_seconds(rows) == 3.0 + 1.5 + 0.2
    assert launch.training_seconds([]) == 0.0


# ----------------------------------------------------------------------------- whose process

def _killed_run_folder(run_dir, data):
    """The folder of a command-line run that was killed outright: its config.json, its pid left
    in .lock (nobody holds the lock any more)."""
    from camlkit.config import to_dict

    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(to_dict(make_config("smoke", data=data))))
    (run_dir / "checkpoints").mkdir()
    return run_dir


def test_a_reused_pid_in_a_killed_runs_lock_is_not_signalled(tmp_path, data):
    run_dir = _killed_run_folder(tmp_path / "run", data)
    other = subprocess.Popen(["sleep", "600"])  # the pid the kernel gave again, to another process
    try:
        (run_dir / ".lock").write_text(f"{other.pid}\n")
        run = launch.attach(run_dir)
        assert run.status().state == "stopped" and run.own_pid() is None
        assert run.stop(timeout_s=5).state == "stopped"
        time.sleep(0.5)
        assert other.poll() is None  # the sleep was not signalled
    finally:
        other.kill()
        other.wait()


def test_a_process_json_without_start_time_does_not_make_a_process_the_run(tmp_path, data):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        (run_dir / "process.json").write_text(json.dumps(
            {"pid": other.pid, "command": process.child_command(run_dir),
             "host": socket.gethostname(), "iterations": 6}))
        (run_dir / ".lock").write_text(f"{other.pid}\n")
        run = launch.attach(run_dir)
        assert not run.is_running() and run.stop(timeout_s=5).state == "failed"
        time.sleep(0.5)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("pid", ["abc", None, -4, True, 2.5])
def test_a_process_json_with_a_bad_pid_is_one_line(tmp_path, pid):
    (tmp_path / "process.json").write_text(json.dumps(
        {"pid": pid, "command": process.child_command(tmp_path)}))
    with pytest.raises(CamlkitError, match=r"process.json: unreadable \(pid .* is not a process id\)"):
        launch.attach(tmp_path)


def test_the_loser_of_a_start_race_is_not_told_to_call_start(tmp_path, data, monkeypatch):
    # the winner holds the folder's lock and has written train.out, not process.json yet
    from camlkit.runtime.runfolder import RunLock

    monkeypatch.setattr(launch, "START_WAIT_S", 0.5)
    run_dir = tmp_path / "run"
    lock = RunLock(run_dir).acquire()
    try:
        (run_dir / "train.out").write_text("# starting\n")
        cfg = make_config("smoke", data=data)
        with pytest.raises(CamlkitError, match=f"in use by process {os.getpid()}") as err:
            launch.start(cfg, run_dir)
        assert "start(" not in str(err.value) and "\n" not in str(err.value)
    finally:
        lock.release()


@pytest.mark.slow
def test_stop_ends_a_command_line_run_that_ignores_sigint(tmp_path, data):
    # `camlkit train ... &` from a script: a non-interactive shell starts the job ignoring SIGINT
    run_dir = tmp_path / "run"
    cfg = make_config("smoke", data=data, iterations=5000, checkpoint_every=2)
    words = " ".join(f"'{w}'" for w in launch.config_to_args(cfg))
    script = (f"{sys.executable} -m camlkit.cli train {words} --out '{run_dir}' --quiet "
              f"2>/dev/null & echo $!; wait")
    shell = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(shell.stdout.readline())
    try:
        _wait_for(lambda: (run_dir / "checkpoints" / "last.pth").exists())
        run = launch.attach(run_dir)
        assert run.own_pid() == pid and process.ignores_signal(pid, 2)
        status = run.stop(timeout_s=60)
        assert status.state == "stopped" and status.resumable
        assert shell.wait(timeout=60) == 0
    finally:
        if shell.poll() is None:
            os.kill(pid, 9)
            shell.kill()


@pytest.mark.slow
def test_a_command_line_run_finished_with_no_eval_is_finished(tmp_path, data):
    cfg = make_config("smoke", data=data, iterations=2)
    run_dir = tmp_path / "run"
    _train_cli(cfg, run_dir, "--no-eval")
    assert not (run_dir / "summary.json").exists()
    status = launch.attach(run_dir).status()
    assert (status.state, status.resumable) == ("finished", False)
    assert launch.start(cfg, run_dir)._process is None  # shown, not launched again


def test_launch_refuses_a_value_out_of_bounds_before_starting_a_process(tmp_path, data):
    with pytest.raises(CamlkitError, match=r"^--step.occ_temperature -1.0: expected a finite number > 0$"):
        launch.launch({"preset": "smoke", "data": data, "step.occ_temperature": -1.0}, tmp_path / "run")
    assert not (tmp_path / "run").exists()
