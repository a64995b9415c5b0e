"""camlkit.runtime.fast: --fast is refused off CUDA in one line and changes nothing by default."""

import subprocess
import sys

import pytest
import torch

from camlkit.config import PRESETS, make_config
from camlkit.occ import MemoryBank
from camlkit.occ_device import DeviceBank
from camlkit.runtime import fast

CPU = torch.device("cpu")


def test_fast_is_off_in_every_preset_and_the_released_bank_is_the_default():
    assert not any(cfg.fast for cfg in PRESETS.values())
    assert isinstance(fast.memory_bank(make_config("smoke")), MemoryBank)
    assert isinstance(fast.memory_bank(make_config("smoke", fast=True)), DeviceBank)
    assert fast.memory_bank(make_config("smoke", method="mcnet")) is None  # no OCC, no bank


def test_on_the_cpu_fast_sets_nothing():
    cfg = make_config("smoke", fast=True)
    assert fast.setup(cfg, CPU) is None
    assert isinstance(fast.autocast(cfg, CPU), type(fast.autocast(make_config("smoke"), CPU)))
    assert fast.layout(make_config("smoke", channels_last=False), CPU) == torch.contiguous_format


def test_update_without_a_scaler_is_backward_then_step():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 3)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    a(x).sum().backward()
    opt_a.step()
    fast.backward_and_update(b(x).sum(), opt_b)
    torch.testing.assert_close(a.weight, b.weight)


@pytest.mark.slow  # a fresh camlkit process (imports torch)
def test_fast_on_the_cpu_is_refused_in_one_line(la_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke", "--fast",
                          "--device", "cpu", "--data", str(la_dir), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--fast needs a CUDA device" in lines[0], out.stderr
    assert not (tmp_path / "run" / "log.csv").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_fast_step_makes_no_host_synchronisation_on_cuda():
    from camlkit.caml import CAMLNet
    from camlkit.step import StepConfig, caml_step

    device = torch.device("cuda")
    cfg = make_config("smoke", fast=True)
    net = CAMLNet(cfg.model).to(device).to(memory_format=torch.channels_last_3d).train()
    bank = fast.memory_bank(cfg)
    z, y = torch.randn(32 * 32 * 16, cfg.model.proj_dim, device=device), torch.rand(32 * 32 * 16, device=device) < 0.3
    for slot in range(cfg.labeled):
        bank.update(slot, z, y.long())
    image = torch.randn(4, 1, 32, 32, 16, device=device).to(memory_format=torch.channels_last_3d)
    label = (torch.rand(4, 32, 32, 16, device=device) < 0.3).long()
    step_cfg = StepConfig(**{**cfg.step.__dict__, "warmup": 0})
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with fast.autocast(cfg, device):
            loss, _ = caml_step(net, image, label, 2, 100, step_cfg, bank, [0, 1])
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss)
