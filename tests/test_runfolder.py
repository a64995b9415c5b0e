"""camlkit/runtime/runfolder.py: one run per folder, with real concurrent processes and real signals."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from camlkit.errors import CamlkitError
from camlkit.runtime.runfolder import CHECKPOINT, LAUNCH_FILES, RUN_FILES, RunLock, check_new_run, run_files, run_folder

# Takes the run folder (argv[1]) and holds it until told to stop (stdin closes) or killed.
HOLDER = textwrap.dedent("""
    import sys
    from camlkit.errors import CamlkitError
    from camlkit.runtime.runfolder import run_folder
    try:
        with run_folder(sys.argv[1], resume=False, overwrite=False):
            (__import__("pathlib").Path(sys.argv[1]) / "summary.json").write_text("{}")
            print("holding", flush=True)
            sys.stdin.read()
    except CamlkitError as err:
        print(f"camlkit train: error: {err}", file=sys.stderr)
        sys.exit(2)
""")


def take(folder, **kwargs):
    """Start a process that takes ``folder``; returns it once it holds the folder or has ended."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    line = process.stdout.readline()
    return process, line.strip() == "holding"


def finish(process):
    process.stdin.close()
    process.wait(timeout=30)
    return process.stderr.read()


@pytest.mark.slow
def test_second_process_on_the_same_folder_gets_one_line_naming_the_first(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    try:
        second, second_holding = take(run)
        err = finish(second)
        assert not second_holding and second.returncode == 2
        assert len(err.strip().splitlines()) == 1
        assert f"process {first.pid}" in err and str(run) in err and "in use" in err
    finally:
        assert finish(first) == ""
    assert first.returncode == 0
    assert (run / ".lock").read_text() == ""  # released: the pid is gone from the lock file


@pytest.mark.slow  # fresh training processes
def test_killed_holder_leaves_a_stale_lock_that_the_next_run_reports_and_takes(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (run / ".lock").read_text().split()[0] == str(first.pid)
    (run / "summary.json").unlink()  # the killed run's files are the next test's business
    second, holding = take(run)
    try:
        assert holding
        assert (run / ".lock").read_text().split()[0] == str(second.pid)
    finally:
        err = finish(second)
    assert second.returncode == 0
    assert len(err.strip().splitlines()) == 1 and f"process {first.pid}" in err and "killed" in err


def test_sigterm_releases_the_lock_cleanly(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 143
    assert (run / ".lock").read_text() == ""
    with RunLock(run) as lock:
        assert lock.stale_pid is None


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_by_a_new_one(tmp_path):
    run = tmp_path / "run"
    first, _ = take(run)
    finish(first)
    second, holding = take(run)
    err = finish(second)
    assert not holding and second.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "already holds a run (summary.json)" in err and "--resume" in err


KEPT = ("model_final.pth", "summary.md", "summary.json", "cases.csv", "curves.png", CHECKPOINT)
STARTUP = ("config.json", "log.csv", "tb/events.out.tfevents.1700000000.host.1.0", "process.json",
           "train.out")


def plant(folder, names, text="old"):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


@pytest.mark.parametrize("name", KEPT)
def test_a_run_file_worth_keeping_makes_the_folder_taken(tmp_path, name):
    plant(tmp_path, [name, "config.json"])
    with pytest.raises(CamlkitError, match=f"already holds a run .*{name.split('/')[0]}.*--overwrite"):
        check_new_run(tmp_path)
    assert (tmp_path / name).read_text() == "old"


def test_the_names_are_the_run_files():
    assert set(KEPT) | {n for n in STARTUP if not n.startswith("tb/")} == {*RUN_FILES, CHECKPOINT,
                                                                           *LAUNCH_FILES}


def tree(folder):
    """Every file under ``folder`` with its text, by relative path."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_empty_or_foreign_folder_is_free(tmp_path):
    # the user's files, some named like the run's (but not the run's names) and in its folders
    foreign = ["notes.txt", "checkpoints/iter25_keep.pth", "checkpoints/last.pth.bak",
               "tb/my_notes.txt", "summary.json.old", "log.csv~"]
    plant(tmp_path, foreign, text="mine")
    for overwrite in (False, True):  # free: nothing to refuse, and nothing of the user's removed
        check_new_run(tmp_path, overwrite=overwrite)
        assert tree(tmp_path) == {name: "mine" for name in foreign}
    check_new_run(tmp_path / "not-yet")  # a folder that does not exist yet is free; none is made
    assert not (tmp_path / "not-yet").exists()


def test_a_start_that_stopped_before_its_first_checkpoint_is_removed_and_started_again(tmp_path, capsys):
    for resume in (False, True):  # the same command, or the --resume that Ctrl-C suggested
        plant(tmp_path, STARTUP)
        plant(tmp_path, ["notes.txt", "tb/my_notes.txt"], text="mine")
        check_new_run(tmp_path, resume=resume)
        assert run_files(tmp_path) == []
        assert (tmp_path / "notes.txt").read_text() == (tmp_path / "tb" / "my_notes.txt").read_text() == "mine"
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "stopped before its first checkpoint" in err
        assert "config.json" in err and "log.csv" in err


def test_resume_needs_a_training_checkpoint(tmp_path):
    (tmp_path / "model_final.pth").write_text("x")
    with pytest.raises(CamlkitError, match="last.pth: nothing to resume"):
        check_new_run(tmp_path, resume=True)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pth").write_text("x")
    check_new_run(tmp_path, resume=True)
    with pytest.raises(CamlkitError, match="choose one"):
        check_new_run(tmp_path, resume=True, overwrite=True)


def test_overwrite_removes_exactly_the_run_files(tmp_path):
    plant(tmp_path, [*KEPT, *STARTUP])
    mine = ["notes.txt", "checkpoints/iter25_keep.pth", "checkpoints/best.pth", "tb/my_notes.txt"]
    plant(tmp_path, mine, text="mine")
    with run_folder(tmp_path, overwrite=True) as folder:
        assert folder == tmp_path and run_files(folder) == []
    for name in mine:
        assert (tmp_path / name).read_text() == "mine", name


def test_out_naming_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(CamlkitError, match="existing file"):
        with run_folder(tmp_path / "run"):
            pass


def test_run_folder_cleans_the_temporaries_of_killed_writers(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / f".last.pth.tmp-{dead.pid}"
    stale.write_bytes(b"half")
    (tmp_path / "checkpoints" / "last.pth").write_bytes(b"whole")
    with run_folder(tmp_path, resume=True):
        assert not stale.exists() and (tmp_path / "checkpoints" / "last.pth").exists()
    assert str(stale) in capsys.readouterr().err


def test_lock_in_this_process_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path):
            assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
            raise RuntimeError("the training failed")
    assert (tmp_path / ".lock").read_text() == ""
    with run_folder(tmp_path):  # free again
        pass


def test_holder_script_imports_this_checkout():
    # the subprocesses above must test this worktree's camlkit, not another installed copy
    out = subprocess.run([sys.executable, "-c", "import camlkit; print(camlkit.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).parent.parent == Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- symbolic links

@pytest.mark.parametrize("name", [".lock", "config.json", "log.csv", "summary.json", "process.json",
                                  "train.out", "checkpoints", "tb", CHECKPOINT])
def test_a_planted_symlink_is_one_line_and_its_target_is_untouched(tmp_path, name):
    run, outside = tmp_path / "run", tmp_path / "outside"
    (run / name).parent.mkdir(parents=True)
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious")
    (run / name).symlink_to(outside if name in ("checkpoints", "tb") else victim)
    with pytest.raises(CamlkitError) as err:
        with run_folder(run, resume=name == CHECKPOINT):
            pass
    message = str(err.value)
    assert "\n" not in message and "symbolic link" in message and str(run / name) in message
    assert victim.read_text() == "precious" and [p.name for p in outside.iterdir()] == ["victim.txt"]
    assert (run / name).is_symlink()


def test_a_file_written_in_place_refuses_a_link_planted_during_the_run(tmp_path):
    from camlkit.runtime.runlog import RunLog

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "log.csv").symlink_to(victim)
    with pytest.raises(CamlkitError, match="log.csv is a symbolic link"):
        RunLog(tmp_path, resume=False, start=0)
    assert victim.read_text() == "precious"


def test_train_with_a_planted_lock_link_leaves_the_target_whole(tmp_path, la_dir):
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / ".lock").symlink_to(victim)
    out = subprocess.run(train_command(la_dir, run), capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert ".lock is a symbolic link" in out.stderr
    assert victim.read_text() == "precious" and run_files(run) == []


# ----------------------------------------------------------------------------- failed starts

def train_command(data, run, *extra):
    return [sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke", "--data", str(data),
            "--out", str(run), "--no-eval", "--quiet", *extra]


def damaged_copy(la_dir, dest, damaged):
    """An LA folder whose cases link to ``la_dir``'s, except ``damaged`` (garbage bytes)."""
    from camlkit.data import CASES_FOLDER, read_list

    (dest / CASES_FOLDER).mkdir(parents=True)
    for name in ("train.list", "test.list"):
        (dest / name).write_text((la_dir / name).read_text())
    for case in read_list(la_dir / "train.list") + read_list(la_dir / "test.list"):
        if case in damaged:
            (dest / CASES_FOLDER / case).mkdir()
            (dest / CASES_FOLDER / case / "mri_norm2.h5").write_bytes(b"not hdf5" * 100)
        else:
            (dest / CASES_FOLDER / case).symlink_to(la_dir / CASES_FOLDER / case)


@pytest.mark.slow
def test_a_data_error_at_start_up_does_not_block_the_same_command_once_fixed(tmp_path, la_dir):
    from camlkit.data import read_list

    labeled = read_list(la_dir / "train.list")[:4]  # the smoke preset's labeled cases
    damaged_copy(la_dir, tmp_path / "bad", damaged=labeled)
    run = tmp_path / "run"
    first = subprocess.run(train_command(tmp_path / "bad", run), capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 2 and "mri_norm2.h5" in first.stderr, first.stderr
    assert "config.json" in run_files(run) and not (run / CHECKPOINT).exists()  # what used to block

    fixed = tmp_path / "fixed"
    damaged_copy(la_dir, fixed, damaged=())
    again = subprocess.run(train_command(fixed, run), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "stopped before its first checkpoint" in again.stderr
    assert (run / "model_final.pth").is_file() and (run / CHECKPOINT).is_file()


@pytest.mark.slow
def test_ctrl_c_before_the_first_checkpoint_then_the_suggested_resume_starts_again(tmp_path, la_dir):
    run = tmp_path / "run"
    command = train_command(la_dir, run, "--iterations", "60", "--checkpoint-every", "1000")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "log.csv").is_file() or len((run / "log.csv").read_text().splitlines()) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "no checkpoint was written yet" in err, err
    suggested = err.split("to continue: camlkit ")[1].split()
    assert suggested[-1] == "--resume"
    again = subprocess.run([sys.executable, "-m", "camlkit.cli", *suggested], capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "stopped before its first checkpoint" in again.stderr
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(60))  # one run, from iteration 0


# ----------------------------------------------------------------------------- messages

@pytest.mark.slow  # fresh training processes
def test_a_new_run_under_a_read_only_parent_is_one_clear_line(tmp_path, la_dir):
    # as root, permission bits stop nothing: run the command without CAP_DAC_OVERRIDE (setpriv)
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: permission bits cannot be made to apply")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        out = subprocess.run(prefix + train_command(la_dir, parent / "runs" / "new"),
                             capture_output=True, text=True, timeout=300)
    finally:
        parent.chmod(0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"camlkit train: error: --out {parent / 'runs' / 'new'}: cannot "
                                  f"create it, {parent} (the nearest existing folder above it) is "
                                  f"not writable")
