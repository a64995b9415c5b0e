"""camlkit/limits.py: out of memory and the file-size limit are one line, in real processes under
real limits (``resource.setrlimit``), naming what ran out and what was kept."""

import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

from camlkit.limits import file_too_large, limit_reached, out_of_memory

# A camlkit command whose function ``module:name`` runs under an address-space limit of the
# process's size when it is called plus HEADROOM MiB: what comes before (imports, training) runs
# free, what the function allocates beyond the headroom fails as it would on a full machine.
LIMITED = '''
import importlib, resource, sys
import camlkit.cli

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

headroom, (module, name) = int(sys.argv[1]) << 20, sys.argv[2].split(":")
module = importlib.import_module(module)
real = getattr(module, name)

def limited(*args, **kwargs):
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + headroom, resource.RLIM_INFINITY))
    return real(*args, **kwargs)

setattr(module, name, limited)
sys.exit(camlkit.cli.main(sys.argv[3:]))
'''
HEADROOM_MIB = 32  # a case's arrays need more; 4 MiB made a C library crash outright


def _limited_memory(function, *argv):
    return subprocess.run([sys.executable, "-c", LIMITED, str(HEADROOM_MIB), function, *argv],
                          capture_output=True, text=True, timeout=600)


def _file_size_limit(limit_bytes):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


def _one_line(out):
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr.strip()


def test_what_each_limit_looks_like():
    assert out_of_memory(MemoryError()) and not out_of_memory(RuntimeError("shapes do not match"))
    assert out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                      "can't allocate memory: you tried to allocate 8 bytes."))
    assert limit_reached(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                                      "x")) == "out of memory (DefaultCPUAllocator: x)"
    assert file_too_large(OSError(27, "File too large")) and not file_too_large(OSError(2, "gone"))
    assert limit_reached(ValueError("x")) is None


@pytest.mark.slow  # a fresh process that imports torch and evaluates
def test_out_of_memory_in_evaluate_is_one_line(tmp_path, la_dir):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import save_inference_model

    torch.manual_seed(0)
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)).eval(), tmp_path / "tiny.pth")
    out = _limited_memory("camlkit.evaluation.evaluate:evaluate_cases", "evaluate", str(tmp_path / "tiny.pth"),
                          "--data", str(la_dir), "--out", str(tmp_path / "ev"), "--cases", "1",
                          "--quiet", "--device", "cpu")
    line = _one_line(out)
    assert line.startswith("camlkit evaluate: error: out of memory (")
    assert "no result or checkpoint is half-written" in line
    written = {p.name for p in (tmp_path / "ev").iterdir()} if (tmp_path / "ev").exists() else set()
    assert written <= {".lock"}  # the folder's lock (camlkit.runtime.runfolder), no result file


@pytest.mark.slow  # two training processes
def test_out_of_memory_in_the_final_evaluation_says_the_training_is_kept(tmp_path, la_dir):
    run = tmp_path / "run"
    args = ["train", "--preset", "smoke", "--data", str(la_dir), "--out", str(run), "--iterations", "2",
            "--eval-cases", "1", "--quiet"]
    line = _one_line(_limited_memory("camlkit.evaluation.final_eval:evaluate_run", *args))
    assert line.startswith(f"camlkit train: error: the training ended and {run / 'model_final.pth'} is "
                           f"saved, but its evaluation failed: out of memory (")
    assert line.endswith("run the same command again with --resume: it redoes only the evaluation")
    assert not (run / "summary.json").exists()
    again = subprocess.run([sys.executable, "-m", "camlkit.cli", *args, "--resume"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (run / "summary.json").exists()


@pytest.mark.slow  # a fresh process that imports torch and works
def test_the_file_size_limit_while_checkpointing_is_one_line(tmp_path, la_dir):
    run = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke", "--data",
                          str(la_dir), "--out", str(run), "--iterations", "2", "--no-eval", "--quiet"],
                         capture_output=True, text=True, timeout=600, preexec_fn=_file_size_limit(1 << 20),
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    last = run / "checkpoints" / "last.pth"
    assert _one_line(out) == (f"camlkit train: error: the file-size limit (ulimit -f) was reached writing "
                              f"{last}; the last good checkpoint is none (no checkpoint was written)")
    assert not any(p.name.startswith(".") and ".tmp-" in p.name for p in run.rglob("*"))


@pytest.mark.slow  # a fresh process that imports torch and works
def test_the_file_size_limit_while_writing_a_mask_is_one_line(tmp_path, la_case_paths):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import save_inference_model

    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)).eval(), tmp_path / "tiny.pth")
    mask = tmp_path / "mask.nii"  # uncompressed: the size of the case, 2 MB
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "predict", str(tmp_path / "tiny.pth"),
                          str(la_case_paths[0]), str(mask), "--patch", "32", "32", "16", "--stride", "32",
                          "32", "16", "--scale", "0.25", "--device", "cpu"],
                         capture_output=True, text=True, timeout=600, preexec_fn=_file_size_limit(1 << 20),
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert _one_line(out) == (f"camlkit predict: error: the file-size limit (ulimit -f) was reached "
                              f"writing {mask}; no mask was written")
    assert os.listdir(tmp_path) == ["tiny.pth"]


@pytest.mark.slow  # two real processes (train and evaluate) under ulimit -f 0
def test_no_room_for_the_run_folders_lock_is_one_line(tmp_path, la_dir):
    # a full disk (here `ulimit -f 0`: not a byte may be written) when the lock is taken
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import save_inference_model

    checkpoint = tmp_path / "net.pth"
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2, proj_dim=8)), checkpoint)
    commands = {"train": ["train", "--preset", "smoke", "--data", str(la_dir), "--out", str(tmp_path / "run"),
                          "--iterations", "2", "--quiet"],
                "evaluate": ["evaluate", str(checkpoint), "--data", str(la_dir), "--out", str(tmp_path / "ev"),
                             "--cases", "1", "--quiet"]}
    for name, argv in commands.items():
        out = subprocess.run([sys.executable, "-m", "camlkit.cli", *argv], capture_output=True, text=True,
                             timeout=600, preexec_fn=_file_size_limit(0),
                             env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        folder = tmp_path / ("run" if name == "train" else "ev")
        assert _one_line(out) == (f"camlkit {name}: error: {folder / '.lock'}: cannot write the run folder's "
                                  f"lock (File too large); nothing was started")
        assert [p.name for p in folder.iterdir()] == [".lock"]
