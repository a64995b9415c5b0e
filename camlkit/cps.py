"""Cross pseudo supervision between the two branches: l_c of Eq. 1 (paper §2.1, refs [3, 19]).

Each branch learns to predict the *sharpened* prediction of the other branch (MC-Net's mutual
consistency). With T < 1 sharpening pushes a probability towards 0 or 1, so the target behaves
like a soft pseudo label:

    s(p) = p^(1/T) / (p^(1/T) + (1 - p)^(1/T))            (T = 0.1)
    l_c  = MSE(p_v, s(p_a)) + MSE(p_a, s(p_v))

computed on the softmax probabilities of the whole batch, labeled and unlabeled samples alike.
In the released code the gradient also flows through s(.) into the branch that made the target;
``detach_targets=True`` stops it there, as CPS [3] does.
"""

import torch
import torch.nn.functional as F


def sharpen(p: torch.Tensor, T: float = 0.1) -> torch.Tensor:
    """Sharpen probabilities elementwise: s(p) = p^(1/T) / (p^(1/T) + (1 - p)^(1/T))."""
    p_pow = p ** (1.0 / T)
    return p_pow / (p_pow + (1.0 - p) ** (1.0 / T))


def cps_loss(p_v: torch.Tensor, p_a: torch.Tensor, T: float = 0.1,
             detach_targets: bool = False) -> torch.Tensor:
    """l_c = MSE(p_v, s(p_a)) + MSE(p_a, s(p_v)) for softmax maps p_v, p_a of the same shape."""
    target_for_v, target_for_a = sharpen(p_a, T), sharpen(p_v, T)
    if detach_targets:
        target_for_v, target_for_a = target_for_v.detach(), target_for_a.detach()
    return F.mse_loss(p_v, target_for_v) + F.mse_loss(p_a, target_for_a)
