"""The supervised loss L_s of Eq. 1: soft Dice on the labeled samples (paper §2, Eq. 1; release
``code/train_caml.py``, its ``Binary_dice_loss``).

For each branch, on the labeled half of the batch, between the foreground softmax probability p
and the binary label y:

    dice_loss = 1 - (2 sum(p y) + eps) / (sum(p) + sum(y) + eps),   eps = 1e-8

The released training uses this alone (no cross-entropy); L_s sums it over the two branches and
the total loss weights that sum by 0.5.
"""

import torch

EPS = 1e-8


def dice_loss(prob_fg: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Soft Dice loss over the whole batch: prob_fg and target of the same shape, e.g. (b, h, w, d)."""
    target = target.to(prob_fg.dtype)
    intersection = (prob_fg * target).sum()
    return 1.0 - (2.0 * intersection + eps) / (prob_fg.sum() + target.sum() + eps)
