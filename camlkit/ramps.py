"""The Gaussian ramp-up of the loss weights lambda_c and lambda_o (paper §3, Eq. 1).

    lambda(t) = beta * exp(-5 (1 - min(e, R) / R)^2),   e = t // 150

The "epoch" e advances every 150 iterations; the ramp length R depends on the labeled count
(40, 20, 15 epochs for 4, 8, 16 labeled). beta = 1 for lambda_c and 0.05 for lambda_o in the
released code (the paper writes 0.1). The release (``code/train_caml.py``) increments its
iteration counter before computing lambda, so with camlkit's 0-based iterations it uses
t = iteration + 1; camlkit.step passes that (``StepConfig.ramp_offset``, 1 by default).
"""

import math

ITERATIONS_PER_EPOCH = 150
RAMP_LENGTH = {4: 40, 8: 20, 16: 15}  # labeled cases -> R (epochs)


def sigmoid_rampup(epoch: float, length: float) -> float:
    """exp(-5 (1 - min(epoch, length) / length)^2): 0.0067 at 0, 0.2865 at length/2, 1 after."""
    if length == 0:
        return 1.0
    phase = 1.0 - min(max(epoch, 0.0), length) / length
    return math.exp(-5.0 * phase * phase)


def ramp_length(labeled: int) -> int:
    """R for a labeled count: the released values for 4/8/16, otherwise the nearest of those."""
    if labeled in RAMP_LENGTH:
        return RAMP_LENGTH[labeled]
    nearest = min(RAMP_LENGTH, key=lambda n: abs(n - labeled))
    return RAMP_LENGTH[nearest]


def loss_weight(iteration: int, beta: float, length: float,
                iterations_per_epoch: int = ITERATIONS_PER_EPOCH) -> float:
    """lambda(t) at a training iteration."""
    return beta * sigmoid_rampup(iteration // iterations_per_epoch, length)
