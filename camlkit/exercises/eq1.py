"""Exercises on the terms of Eq. 1: L_s (notebook 2), s(p) and l_c (notebook 3), lambda(t) and
the total (notebook 6). References: camlkit.losses, camlkit.cps, camlkit.ramps, camlkit.step."""

import math

import torch
import torch.nn.functional as F

from camlkit import cps, losses, ramps
from camlkit.exercises.base import Case, Exercise, random_rows, tensor, uniform
from camlkit.step import StepConfig

# ----------------------------------------------------------------------------- 2 · L_s

def _dice_random(gen):
    return [Case(f"random {tuple(s)} {dt}".replace("torch.", ""),
                 (uniform(gen, *s, dtype=dt), torch.randint(0, 2, s, generator=gen)))
            for s, dt in (((6,), torch.float32), ((2, 3, 4), torch.float64), ((2, 5, 4, 3), torch.float32))]


DICE = Exercise(
    "dice_loss", "02_vnet", ("prob_fg", "target"), losses.dice_loss,
    cases=lambda: [
        Case("p = [1, 0, 0.5], y = [1, 0, 1] gives 1 - 3/3.5", (tensor(1.0, 0.0, 0.5), torch.tensor([1, 0, 1]))),
        Case("a perfect prediction gives 0", (tensor(1.0, 0.0, 1.0), torch.tensor([1, 0, 1]))),
        Case("empty prediction, empty label gives 0", (torch.zeros(4), torch.zeros(4, dtype=torch.long))),
    ],
    random=_dice_random,
    grad_case=Case("", (tensor(0.2, 0.7, 0.9, 0.4, dtype=torch.float64), torch.tensor([0, 1, 1, 0]))),
    grad_args=(0,),
    mistakes=(
        ("returns the Dice coefficient 2|p∩y|/(|p|+|y|), not the loss 1 - Dice",
         lambda p, y: 1 - losses.dice_loss(p, y)),
        ("the factor 2 of the intersection is missing",
         lambda p, y: 1 - ((p * y).sum() + 1e-8) / (p.sum() + y.sum() + 1e-8)),
        ("squares in the denominator (V-Net's own Dice): the release divides by sum(p) + sum(y)",
         lambda p, y: 1 - (2 * (p * y).sum() + 1e-8) / ((p * p).sum() + (y * y).sum() + 1e-8)),
    ),
    nan_hint="0/0 when prediction and label are both empty: add eps = 1e-8 to the numerator and the denominator",
)


# ----------------------------------------------------------------------------- 3 · s(p) and l_c

def _sharpen_random(gen):
    return [Case(f"random {s}, T = {T} {str(dt)[6:]}", (uniform(gen, *s, dtype=dt, low=0.02, high=0.98), T))
            for s, T, dt in (((5,), 0.1, torch.float32), ((2, 3, 4), 0.5, torch.float64),
                             ((2, 2, 3, 3, 2), 0.25, torch.float32))]


SHARPEN = Exercise(
    "sharpen", "03_mutual_learning", ("p", "T"), cps.sharpen,
    cases=lambda: [
        Case("a sharpened 0.5 stays 0.5", (tensor(0.5), 0.1)),
        Case("s(0.9), T = 0.1 is 0.9^10 / (0.9^10 + 0.1^10)", (tensor(0.9), 0.1)),
        Case("s(0.6), T = 0.5 is 0.36 / 0.52", (tensor(0.6), 0.5)),
        Case("the default T is 0.1", (tensor(0.3, 0.6),)),
    ],
    random=_sharpen_random,
    grad_case=Case("", (tensor(0.2, 0.5, 0.7, dtype=torch.float64), 0.5)),
    grad_args=(0,),
    mistakes=(
        ("p^T where Eq. 1's sharpening takes p^(1/T)", lambda p, T=0.1: p**T / (p**T + (1 - p) ** T)),
        ("p^(1/T) without dividing by p^(1/T) + (1 - p)^(1/T)", lambda p, T=0.1: p ** (1 / T)),
        ("ignores the temperature T (always 0.1)", lambda p, T=0.1: cps.sharpen(p, 0.1) if T != 0.1 else None),
    ),
)


def _pair(gen, shape, dt):
    return random_rows(gen, *shape, dtype=dt), random_rows(gen, *shape, dtype=dt)


def _cps_random(gen):
    return [Case(f"random {s}, T = {T} {str(dt)[6:]}", (*_pair(gen, s, dt), T))
            for s, T, dt in (((2, 2, 3, 3, 2), 0.1, torch.float32), ((1, 3, 4, 2, 2), 0.5, torch.float64))]


CPS = Exercise(
    "cps_loss", "03_mutual_learning", ("p_v", "p_a", "T"), cps.cps_loss,
    cases=lambda: [
        Case("p_v = [0.9, 0.1], p_a = [0.6, 0.4], T = 0.5 (unit test)",
             (tensor(0.9, 0.1)[None], tensor(0.6, 0.4)[None], 0.5)),
        Case("two confident branches that agree pay 0", (tensor(1.0, 0.0)[None], tensor(1.0, 0.0)[None], 0.1)),
        Case("the default T is 0.1", (tensor(0.7, 0.3)[None], tensor(0.4, 0.6)[None])),
    ],
    random=_cps_random,
    grad_case=Case("", (tensor(0.7, 0.3, 0.2, 0.8, dtype=torch.float64).view(2, 2),
                        tensor(0.4, 0.6, 0.45, 0.55, dtype=torch.float64).view(2, 2), 0.5)),
    grad_args=(0, 1),
    mistakes=(
        ("no sharpening: the targets are the raw predictions p_a and p_v",
         lambda p_v, p_a, T=0.1: F.mse_loss(p_v, p_a) + F.mse_loss(p_a, p_v)),
        ("no crossing: each branch is matched to its own sharpened prediction",
         lambda p_v, p_a, T=0.1: F.mse_loss(p_v, cps.sharpen(p_v, T)) + F.mse_loss(p_a, cps.sharpen(p_a, T))),
        ("only one direction: MSE(p_v, s(p_a)) without MSE(p_a, s(p_v))",
         lambda p_v, p_a, T=0.1: F.mse_loss(p_v, cps.sharpen(p_a, T))),
        ("a sum of squares where l_c takes the mean (MSE)",
         lambda p_v, p_a, T=0.1: cps.cps_loss(p_v, p_a, T) * p_v.numel()),
    ),
)


# ----------------------------------------------------------------------------- 6 · Eq. 1

def _ramp_random(gen):
    values = torch.randint(0, 9000, (4,), generator=gen).tolist()
    return [Case(f"t = {t}, beta = {beta}, R = {R}", (t, beta, R))
            for t, beta, R in zip(values, (1.0, 0.05, 1.0, 0.05), (40, 20, 15, 40))]


RAMP = Exercise(
    "loss_weight", "06_caml_training", ("iteration", "beta", "length"), ramps.loss_weight,
    cases=lambda: [
        Case("t = 149 is still epoch 0: 0.05 · e^-5", (149, 0.05, 40)),
        Case("t = 3000 is epoch 20 of R = 40: 0.05 · e^-1.25", (3000, 0.05, 40)),
        Case("after the ramp (t = 15000, R = 15): beta", (15000, 1.0, 15)),
        Case("R = 0 means no ramp: beta", (300, 1.0, 0)),
    ],
    random=_ramp_random,
    mistakes=(
        ("the epoch is t / 150 as a fraction: it advances in whole steps, e = t // 150",
         lambda t, b, R: b * math.exp(-5 * (1 - min(t / 150, R) / R) ** 2) if R else None),
        ("no min(e, R): after R epochs the weight must stay at beta",
         lambda t, b, R: b * math.exp(-5 * (1 - (t // 150) / R) ** 2) if R else None),
        ("exp(-5 (1 - e/R)) without the square",
         lambda t, b, R: b * math.exp(-5 * (1 - min(t // 150, R) / R)) if R else None),
        ("the iteration used as the epoch: e = t // 150", lambda t, b, R: b * ramps.sigmoid_rampup(t, R)),
    ),
)


def total_loss(L_s, l_c, l_o, iteration, ramp_length=40):
    """Eq. 1 from its parts, as camlkit.step.caml_step combines them (StepConfig's released defaults)."""
    cfg = StepConfig()
    t = iteration + cfg.ramp_offset  # the release counts the iteration before the ramp reads it
    lambda_c = ramps.loss_weight(t, cfg.beta_c, ramp_length, cfg.iterations_per_epoch)
    lambda_o = ramps.loss_weight(t, cfg.beta_o, ramp_length, cfg.iterations_per_epoch)
    return cfg.weight_s * L_s + lambda_c * l_c + lambda_o * l_o


def _total_random(gen):
    cases = []
    for R, dt in ((40, torch.float32), (20, torch.float64), (15, torch.float32)):
        parts = uniform(gen, 3, dtype=dt, high=2.0)
        t = int(torch.randint(0, 9000, (), generator=gen))
        cases.append(Case(f"random parts, t = {t}, R = {R} {str(dt)[6:]}", (*parts.unbind(), t, R)))
    return cases


def _total_with(weight_s=0.5, beta_o=0.05, offset=1, swap=False):
    def wrong(L_s, l_c, l_o, t, R=40):
        lc, lo = (ramps.loss_weight(t + offset, beta, R) for beta in (1.0, beta_o))
        return weight_s * L_s + (lo if swap else lc) * l_c + (lc if swap else lo) * l_o
    return wrong


TOTAL = Exercise(
    "total_loss", "06_caml_training", ("L_s", "l_c", "l_o", "iteration", "ramp_length"), total_loss,
    cases=lambda: [
        Case("after the ramp: 0.5 L_s + l_c + 0.05 l_o = 0.8", (*tensor(1.0, 0.2, 2.0).unbind(), 9000, 40)),
        Case("t = 0: both lambdas at e^-5 of beta", (*tensor(0.6, 0.3, 9.2).unbind(), 0, 40)),
        Case("t = 149 is already epoch 1 in the release", (*tensor(0.6, 0.3, 9.2).unbind(), 149, 40)),
        Case("the default ramp_length is 40", (*tensor(0.5, 0.4, 3.0).unbind(), 3000)),
    ],
    random=_total_random,
    grad_case=Case("", (*tensor(0.7, 0.2, 4.0, dtype=torch.float64).unbind(), 3000, 40)),
    grad_args=(0, 1, 2),
    mistakes=(
        ("the paper's weights: the release weights L_s by 0.5 (the paper: 1) and uses beta_o = 0.05 (the paper: 0.1)",
         _total_with(weight_s=1.0, beta_o=0.1)),
        ("L_s weighted by 1 (the paper's text): the release weights it by 0.5", _total_with(weight_s=1.0)),
        ("beta_o = 0.1 (the paper's text): the release uses 0.05", _total_with(beta_o=0.1)),
        ("the ramp reads e = iteration // 150: the release counts the iteration first, (iteration + 1) // 150",
         _total_with(offset=0)),
        ("lambda_c and lambda_o swapped: beta_c = 1 weighs l_c, beta_o = 0.05 weighs l_o", _total_with(swap=True)),
    ),
)
