"""camlkit/files.py: atomic writes with the user's umask, and temporary files of killed writers.

The process tests run real Python subprocesses and send them real signals.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from camlkit.errors import CamlkitError
from camlkit.files import (
    TEMP_NAME,
    atomic_path,
    clean_temps,
    open_no_link,
    pid_alive,
    temp_path,
    write_bytes,
    write_text,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(value):
        os.umask(value)

    yield set_umask
    os.umask(saved)


def write_with_every_writer(folder):
    """One file from each of camlkit's writers; returns their paths."""
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.data.preprocess import write_case_h5
    from camlkit.data.volumes import write_mask_nifti
    from camlkit.evaluation.evaluate import write_csv
    from camlkit.runtime.checkpoint import save_inference_model

    write_text("hello\n", folder / "summary.md")
    write_csv([{"case": "a", "dice": 0.5, "jaccard": 0.3, "hd95": 1.0, "asd": 0.5}], folder / "cases.csv")
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)), folder / "model_final.pth")
    write_mask_nifti(np.ones((4, 4, 4), np.uint8), np.eye(4), folder / "mask.nii.gz")
    write_case_h5(folder / "case" / "mri_norm2.h5", np.ones((4, 4, 4), np.float32), np.ones((4, 4, 4), np.uint8))
    return [folder / n for n in ("summary.md", "cases.csv", "model_final.pth", "mask.nii.gz", "case/mri_norm2.h5")]


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_writer_follows_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    for path in write_with_every_writer(tmp_path):
        assert path.stat().st_mode & 0o777 == mode, path
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left


def test_a_writer_that_raises_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise ZeroDivisionError("the writer fails half-way")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


def test_temporary_name_is_recognisable(tmp_path):
    tmp = temp_path(tmp_path / "last.pth")
    assert tmp.name == f".last.pth.tmp-{os.getpid()}"
    assert int(TEMP_NAME.match(tmp.name)["pid"]) == os.getpid()
    nii = TEMP_NAME.match(temp_path(tmp_path / "m.nii.gz", ".nii.gz").name)
    assert nii["name"] == "m.nii.gz" and nii["suffix"] == ".nii.gz"
    assert TEMP_NAME.match("notes.tmp-12") is None and TEMP_NAME.match(".notes.txt") is None


def test_missing_folder_is_one_line(tmp_path):
    with pytest.raises(CamlkitError, match="folder .*nowhere does not exist"):
        write_text("x", tmp_path / "nowhere" / "a.txt")


# ----------------------------------------------------------------------------- real processes

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from camlkit.files import atomic_path, sigterm_as_exit
    with sigterm_as_exit():
        with atomic_path(Path(sys.argv[1])) as tmp:
            tmp.write_text("a part of the results")
            print(tmp, flush=True)
            time.sleep(60)
""")


def start_writer(target):
    """A subprocess that is in the middle of writing ``target``; returns (process, its temp path)."""
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    tmp = Path(process.stdout.readline().strip())
    assert tmp.is_file(), process.stderr.read()
    return process, tmp


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sigkill_leftover_is_cleaned_and_a_live_writer_is_kept(tmp_path):
    killed, killed_tmp = start_writer(tmp_path / "a.csv")
    alive, alive_tmp = start_writer(tmp_path / "b.csv")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert killed_tmp.is_file()  # SIGKILL leaves no chance to clean up
        assert not pid_alive(killed.pid) and pid_alive(alive.pid)
        removed = clean_temps(tmp_path)
        assert removed == [killed_tmp]
        assert not killed_tmp.exists() and alive_tmp.is_file()  # the running writer's file is kept
        assert not (tmp_path / "a.csv").exists()
    finally:
        alive.kill()
        alive.wait()


def test_clean_temps_leaves_other_files(tmp_path):
    stale = tmp_path / f".last.pth.tmp-{dead_pid()}"
    stale.write_bytes(b"x")
    keep = [tmp_path / "last.pth", tmp_path / ".lock", tmp_path / f".x.tmp-{os.getpid()}"]
    for path in keep:
        path.write_bytes(b"x")
    assert clean_temps(tmp_path) == [stale]
    assert all(p.exists() for p in keep)
    assert clean_temps(tmp_path / "absent") == []


# an uncaught KeyboardInterrupt ends Python by SIGINT itself (status -2); the CLI turns it into 130
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, -signal.SIGINT)])
def test_sigterm_and_sigint_remove_the_temporary_file(tmp_path, sig, code):
    target = tmp_path / "summary.md"
    process, tmp = start_writer(target)
    process.send_signal(sig)
    assert process.wait(timeout=30) == code
    assert not tmp.exists() and not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    start = time.time()
    assert not pid_alive(0) and time.time() - start < 1


def test_a_forked_child_ends_on_sigterm_without_running_the_parents_cleanup(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, time
        from camlkit.files import sigterm_as_exit
        with sigterm_as_exit():
            child = os.fork()
            if child == 0:
                time.sleep(60)
                os._exit(0)
            time.sleep(0.2)
            os.kill(child, signal.SIGTERM)
            _, status = os.waitpid(child, 0)
            print(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True" and result.stderr == ""


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (needs the right to mount, e.g. root in a container); skipped elsewhere."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a small tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_is_one_line_and_keeps_the_previous_file(small_disk):
    from camlkit.files import DiskFullError
    from camlkit.runtime.checkpoint import save_checkpoint

    last = small_disk / "last.pth"
    save_checkpoint({"w": torch.zeros(1000)}, last)
    before = last.read_bytes()
    with pytest.raises(DiskFullError) as info:
        save_checkpoint({"w": torch.zeros(100_000)}, last)  # 400 KB on a 256 KiB disk
    assert str(info.value) == f"no space left on the device writing {last}; {last} still holds its previous version"
    assert last.read_bytes() == before
    assert [p.name for p in small_disk.iterdir()] == ["last.pth"]
    with pytest.raises(DiskFullError, match="writing .*summary.md$"):
        write_text("x" * 400_000, small_disk / "summary.md")


# ----------------------------------------------------------------------------- symbolic links

def test_an_atomic_write_replaces_a_planted_link_and_leaves_its_target_whole(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for write in (lambda p: write_text("new", p), lambda p: write_bytes(b"new", p)):
        (tmp_path / "summary.md").unlink(missing_ok=True)
        (tmp_path / "summary.md").symlink_to(victim)
        write(tmp_path / "summary.md")
        assert not (tmp_path / "summary.md").is_symlink()
        assert (tmp_path / "summary.md").read_text() == "new" and victim.read_text() == "precious"


@pytest.mark.parametrize("mode", ["w", "a", "ab"])
def test_open_no_link_refuses_a_link_in_one_line(tmp_path, mode):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "train.out").symlink_to(victim)
    with pytest.raises(CamlkitError, match="train.out is a symbolic link") as err:
        open_no_link(tmp_path / "train.out", mode)
    assert "\n" not in str(err.value) and str(victim) in str(err.value)
    assert victim.read_text() == "precious"
    with open_no_link(tmp_path / "plain.txt", mode) as f:
        f.write(b"x" if "b" in mode else "x")
    assert (tmp_path / "plain.txt").read_text() == "x"
