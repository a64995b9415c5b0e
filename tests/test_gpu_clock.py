"""bench.gpu_clock at smoke size on the CPU (CI has no GPU): both rows, MFU, the evaluation."""

import re

import pytest
import torch

from bench import gpu_clock


def test_peak_is_the_flag_or_the_device_name():
    assert gpu_clock.peak_flops(torch.device("cpu"), "bf16", given_tflops=2.5) == 2.5e12
    assert gpu_clock.peak_flops(torch.device("cpu"), "bf16") is None  # a CPU has no entry


@pytest.mark.slow  # a training step three ways and one case's evaluation: ~20 s on 2 busy cores
def test_smoke_clock_reports_both_steps_and_the_evaluation(la_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    out = tmp_path / "clock.md"
    assert gpu_clock.main(["--smoke", "--device", "cpu", "--data", str(la_dir), "--out", str(out),
                            "--warmup", "0", "--iterations", "1", "--peak-tflops", "0.05"]) == 0
    text = out.read_text()
    rows = {m[0]: float(m[1]) for m in re.findall(r"^\| (released arithmetic|--fast) \| ([0-9.]+) \|",
                                                   text, re.M)}
    assert set(rows) == {"released arithmetic", "--fast"} and all(v > 0 for v in rows.values())
    gflop = float(re.search(r"released step \(forward \+ backward\): ([0-9.]+) GFLOP", text)[1])
    assert gflop > 0
    mfu = re.search(r"^\| released arithmetic \|.*\| ([0-9.]+) % of 0\.05 \(fp32\)", text, re.M)
    assert abs(float(mfu[1]) - 100 * gflop * 1e9 / rows["released arithmetic"] / 0.05e12) < 0.02 * float(mfu[1]) + 0.01
    assert re.search(r"labels that differ other than at ties: 0$", text, re.M)
