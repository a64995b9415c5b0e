"""OCC's two forms of Eq. 3 (step.occ_log), the health figures of its rows, the l_o lock read from logs."""

import csv
import math

import pytest
import torch

from camlkit import occ
from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.config import make_config
from camlkit.diagnostics import health
from camlkit.step import StepConfig, caml_step
from camlkit.train import Eq1Module, logged, train_iteration
from camlkit.viz.curves import curve_panels


def _loss(logits_v, logits_a, form):
    sim_v, sim_a = logits_v.softmax(1), logits_a.softmax(1)
    log_v = logits_v.log_softmax(1) if form == "log_softmax" else None
    return occ.occ_loss(sim_v, sim_a, log_v)


def test_both_forms_agree_where_nothing_saturates():
    torch.manual_seed(0)
    logits_v, logits_a = torch.randn(50, 16) * 2, torch.randn(50, 16) * 2
    eps, stable = _loss(logits_v, logits_a, "eps"), _loss(logits_v, logits_a, "log_softmax")
    assert eps.item() > 1.0
    assert eps.item() == pytest.approx(stable.item(), rel=1e-5)


def test_a_saturated_mismatched_row_has_a_gradient_only_in_the_stable_form():
    toy = health.saturation_toy(gap=40.0)
    l_eps, g_eps = toy["eps"]
    l_log, g_log = toy["log_softmax"]
    assert l_eps == pytest.approx(-math.log(1e-8), rel=1e-6)  # the ceiling, 18.42
    assert g_eps < 1e-8  # p (1 - p) / (p + 1e-8) with p = e^-40
    assert l_log == pytest.approx(40.0, rel=1e-6)  # -log_softmax = the logit gap
    assert g_log == pytest.approx(math.sqrt(2), rel=1e-6)  # softmax - one-hot = (1, -1)


def test_row_health_on_hand_made_rows():
    big = 50.0
    logits_v = torch.tensor([[big, 0.0], [big, 0.0], [big, 0.0], [1.0, 0.0]])
    logits_a = torch.tensor([[big, 0.0], [big, 0.0], [0.0, big], [0.0, 1.0]])
    z = torch.tensor([[3.0, 4.0]] * 4)
    figures = health.row_health(logits_v.softmax(1), logits_a.softmax(1), logits_v, logits_a, z, 2 * z,
                                torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert float(figures["occ_saturated"]) == pytest.approx(3 / 4)
    assert float(figures["occ_sat_mismatch"]) == pytest.approx(1 / 3)
    assert float(figures["occ_norm_zv"]) == pytest.approx(5.0)
    assert float(figures["occ_norm_za"]) == pytest.approx(10.0)
    assert float(figures["occ_norm_zp"]) == pytest.approx(1.0)
    assert float(figures["occ_logit_gap"]) == pytest.approx((6 * big + 2 * 1.0) / 8)
    none = health.row_health(logits_v[3:].softmax(1), logits_a[3:].softmax(1), logits_v[3:],
                             logits_a[3:], z[:1], z[:1], z[:1])
    assert float(none["occ_saturated"]) == 0 and math.isnan(float(none["occ_sat_mismatch"]))


def test_step_rejects_an_unknown_log_form():
    with pytest.raises(ValueError, match="occ_log"):
        StepConfig(occ_log="exp")


def _batch(seed=0):
    torch.manual_seed(seed)
    image = torch.randn(4, 1, 32, 32, 16)
    label = (torch.rand(4, 32, 32, 16) > 0.6).long()
    return image, label


@pytest.mark.parametrize("form", ["eps", "log_softmax"])
def test_caml_step_reports_the_health_of_its_rows(form):
    torch.manual_seed(0)
    net = CAMLNet(CAMLConfig(n_filters=2, proj_dim=8)).train()
    cfg = StepConfig(j=8, top_i=64, occ_log=form, ramp_length=1, iterations_per_epoch=2)
    bank = occ.MemoryBank(2, 8)
    image, label = _batch()
    # an untrained net: fill the bank with its own features at every voxel of the labeled crops
    bank.update(0, torch.randn(500, 8), torch.randint(0, 2, (500,)))
    bank.update(1, torch.randn(500, 8), torch.randint(0, 2, (500,)))
    watch = health.HealthWatch()
    loss, parts = caml_step(net, image, label, 2, 10, cfg, bank, [0, 1], watch=watch)
    figures = watch.figures
    assert set(figures) == set(health.HEALTH_KEYS)
    assert float(parts["l_o"]) > 0
    assert math.isnan(float(figures["occ_grad"]))  # filled in by the backward
    assert 0 <= float(figures["occ_saturated"]) <= 1 and float(figures["occ_norm_zp"]) > 0
    loss.backward()
    assert float(figures["occ_grad"]) > 0


@pytest.mark.parametrize("watched", [False, True])
def test_hooks_are_registered_only_when_health_is_logged(watched, monkeypatch):
    """Without a watch (step.occ_health off) the step leaves z_v and z_a without hooks."""
    from camlkit import step

    torch.manual_seed(0)
    net = CAMLNet(CAMLConfig(n_filters=2, proj_dim=8)).train()
    cfg = StepConfig(j=8, top_i=64, ramp_length=1, iterations_per_epoch=2)
    bank = occ.MemoryBank(2, 8)
    for slot in (0, 1):
        bank.update(slot, torch.randn(500, 8), torch.randint(0, 2, (500,)))
    image, label = _batch()
    seen = []

    def occ_part(*args, real=step.occ_part):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(step, "occ_part", occ_part)
    caml_step(net, image, label, 2, 10, cfg, bank, [0, 1], watch=health.HealthWatch() if watched else None)
    assert seen and seen[0] is not None
    hooked = [bool(seen[0][z]._backward_hooks) for z in ("z_v", "z_a")]
    assert hooked == [watched, watched]


def test_the_logged_gradient_is_l_o_s_own():
    """occ_grad, read from L's backward, equals |d l_o / d(z_v, z_a)| computed directly."""
    torch.manual_seed(1)
    z_v, z_a = torch.randn(20, 4, requires_grad=True), torch.randn(20, 4, requires_grad=True)
    z_p = torch.randn(6, 4)
    l_o = occ.occ_loss(occ.omni_correlation(z_v, z_p), occ.omni_correlation(z_a, z_p))
    direct = torch.autograd.grad(l_o, (z_v, z_a), retain_graph=True)
    expected = torch.sqrt(sum(g.pow(2).sum() for g in direct))
    norm = health.grad_norm_at_backward(l_o, 0.05, z_v, z_a)
    (3.0 + 0.05 * l_o).backward()  # L: other terms do not reach z_v, z_a
    assert float(norm) == pytest.approx(float(expected), rel=1e-5)


def test_warmup_iterations_log_nan_health():
    net = CAMLNet(CAMLConfig(n_filters=2, proj_dim=8))
    image, label = _batch()
    watch = health.HealthWatch()
    watch.figures = {}  # what a step that computes rows would leave
    watch.reset()  # before each step, as camlkit.train's Eq1Module does
    caml_step(net, image, label, 2, 0, StepConfig(warmup=5, j=8, top_i=64), occ.MemoryBank(2, 8), [0, 1],
              watch=watch)
    assert set(watch.figures) == set(health.HEALTH_KEYS)
    assert all(math.isnan(float(v)) for v in watch.figures.values())


def test_health_panels_group_the_log_columns():
    rows = [{"iteration": i, "L": 1.0, "L_s": 1.0, "l_c": 0.1, "l_o": 9.2, "lambda_c": 0.1,
             "lambda_o": 0.01, "occ_saturated": 0.5, "occ_sat_mismatch": float("nan"),
             "occ_norm_zv": 3.0, "occ_norm_za": 3.0, "occ_norm_zp": 2.0, "occ_logit_gap": 5.0,
             "occ_grad": 0.1} for i in range(3)]
    panels = curve_panels(rows)
    titles = [p.title for p in panels]
    assert sum(t.startswith("OCC health") for t in titles) == 3
    assert not any(t.startswith("occ_") for t in titles)  # no panel per health column
    shares = next(p for p in panels if "saturated" in p.title)
    assert shares.keys == ("occ_saturated",)  # a column with no number is not drawn
    nan_rows = [{**r, **{k: float("nan") for k in health.HEALTH_KEYS}} for r in rows]
    assert not any(p.title.startswith("OCC health") for p in curve_panels(nan_rows))


def _write_log(folder, rows):
    folder.mkdir()
    keys = list(rows[0])
    with open(folder / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)


def test_occ_lock_reads_the_plateaus_and_the_mechanism(tmp_path):
    """python -m bench.occ_lock on two hand-made logs: one locked (saturated, mismatched, no gradient on
    the 9.2 plateau), one whose plateau rows still carry a gradient."""
    import subprocess
    import sys
    from pathlib import Path

    def row(i, l_o, sat, mismatch, grad):
        return {"iteration": i, "l_o": l_o, "lambda_o": 0.01, "occ_saturated": sat,
                "occ_sat_mismatch": mismatch, "occ_grad": grad}

    locked = [row(0, 9.21, 1.0, 0.5, 1e-9), row(1, 18.42, 1.0, 1.0, 1e-9), row(2, 4.0, 0.2, 0.0, 1e-2),
              row(3, 0.0, 1.0, 0.0, 0.0)]
    alive = [row(0, 9.3, 0.95, 0.4, 1e-2), row(1, 5.0, 0.5, 0.1, 1e-2)]
    _write_log(tmp_path / "locked", locked)
    _write_log(tmp_path / "alive", alive)
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "bench.occ_lock", str(tmp_path / "locked"),
                          str(tmp_path / "alive")], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    lines = {line.split("|")[1].strip(): line for line in out.splitlines()[2:]}
    assert "| 4 | 1 | 1 | 1 |" in lines["locked"] and "confirmed" in lines["locked"]
    assert "| 2 | 1 | 0 | 0 |" in lines["alive"] and "refuted" in lines["alive"]


def test_the_logged_iterations_are_every_log_every_th_and_the_last():
    cfg = make_config("smoke", log_every=3, iterations=7)
    assert [t for t in range(7) if logged(cfg, t)] == [2, 5, 6]  # rows 3, 6 and the run's end


def _tiny_module():
    """The setting of test_caml_step_reports_the_health_of_its_rows, wrapped as camlkit.train does."""
    torch.manual_seed(0)
    net = CAMLNet(CAMLConfig(n_filters=2, proj_dim=8)).train()
    image, label = _batch()
    bank = occ.MemoryBank(2, 8)
    for slot in (0, 1):
        bank.update(slot, torch.randn(500, 8), torch.randint(0, 2, (500,)))
    step = StepConfig(j=8, top_i=64, ramp_length=1, iterations_per_epoch=2)
    return Eq1Module(net, step, bank), image, label


def test_health_is_computed_only_on_the_iterations_that_are_logged(monkeypatch):
    """train_iteration asks for the figures on a logged iteration only; on the others the step
    computes none and registers no hook."""
    from camlkit import step

    cfg = make_config("smoke", log_every=2, iterations=4)
    seen = []

    def occ_part(*args, real=step.occ_part):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(step, "occ_part", occ_part)
    for iteration in (0, 1):  # the 2nd iteration is logged, the 1st is not
        module, image, label = _tiny_module()
        batch = {"image": image, "label": label, "index": torch.tensor([0, 1, 2, 3])}
        optimizer = torch.optim.SGD(module.net.parameters(), lr=0.01)
        _, parts = train_iteration(module, optimizer, batch, cfg, iteration, torch.device("cpu"),
                                   torch.contiguous_format)
        hooked = [bool(seen[-1][z]._backward_hooks) for z in ("z_v", "z_a")]
        figures = [key for key in health.HEALTH_KEYS if key in parts]
        if iteration == 0:
            assert hooked == [False, False] and figures == []
        else:
            assert hooked == [True, True] and figures == list(health.HEALTH_KEYS)
            assert float(parts["occ_grad"]) > 0  # filled in by train_iteration's backward


def test_the_figures_change_nothing_the_step_computes():
    results = []
    for watched in (False, True):
        module, image, label = _tiny_module()
        loss, parts = module(image, label, 2, 10, [0, 1], health=watched)
        loss.backward()
        grads = [p.grad.clone() for p in module.net.parameters() if p.grad is not None]
        results.append((loss.detach(), grads, sorted(parts)))
    (loss_off, grads_off, keys_off), (loss_on, grads_on, keys_on) = results
    assert torch.equal(loss_off, loss_on) and float(parts["l_o"]) > 0
    assert len(grads_off) == len(grads_on) and all(torch.equal(a, b) for a, b in zip(grads_off, grads_on))
    assert set(keys_on) - set(keys_off) == set(health.HEALTH_KEYS)
