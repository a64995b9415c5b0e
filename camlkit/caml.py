"""The CAML network (paper §2.1, Fig. 1): two V-Nets plus the OCC heads.

* f_v, the **vanilla** network: V-Net with transposed-conv upsampling. The only part used at
  inference.
* f_a, the **auxiliary** network: V-Net with trilinear upsampling (its own weights) whose encoder
  runs CMA (camlkit.cma) on the stage-4 features.
* per branch, OCC's heads acting on every voxel of the last decoder feature map (16 channels):
  the projection head g = Linear(16, c') + BN + ReLU + Linear(c', c') and the prediction head
  Linear(c', c') + BN + ReLU + Linear(c', c').

**c'** is 32 in the released code (the paper says 64; the 64 given on the released command line
never reaches the model). ``proj_dim=64`` gives the paper's variant. With the defaults the
network has exactly 20,128,836 parameters, the released ``CAML3d_v1``.

Switching ``use_cma`` off gives MC-Net's pair of heterogeneous decoders (the ablation baseline).
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from camlkit.cma import CMA
from camlkit.vnet import VNet


@dataclass
class CAMLConfig:
    in_channels: int = 1  # image channels (LA MRI: 1)
    n_classes: int = 2  # background and left atrium
    n_filters: int = 16  # 16 in the paper; fewer for the CPU presets
    proj_dim: int = 32  # c': 32 as released, 64 as the paper states
    use_cma: bool = True  # False: MC-Net's two decoders without CMA
    cma_in_eval: bool = False  # released: CMA is identity in eval mode
    cma_heads: int = 4  # attention heads of each CMA layer (released: 4)
    cma_feedforward: int = 512  # width of CMA's feed-forward block (released: 512)
    cma_dropout: float = 0.5  # dropout inside CMA's layers (released: 0.5)


@contextmanager
def eval_mode(*modules):
    """Run modules in eval mode (BatchNorm uses running statistics, no dropout), then restore."""
    states = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, state in zip(modules, states):
            m.train(state)


def mlp_head(in_dim, out_dim):
    """Linear + BatchNorm1d + ReLU + Linear, applied to (n, in_dim) voxel features."""
    return nn.Sequential(
        nn.Linear(in_dim, out_dim),
        nn.BatchNorm1d(out_dim),
        nn.ReLU(inplace=True),
        nn.Linear(out_dim, out_dim),
    )


class CAMLNet(nn.Module):
    """f_v + f_a + projection (g_v, g_a) and prediction heads. See the module docstring."""

    def __init__(self, config: CAMLConfig | None = None, **overrides):
        super().__init__()
        config = config or CAMLConfig()
        if overrides:
            config = CAMLConfig(**{**config.__dict__, **overrides})
        self.config = config
        c = config
        cma = None
        if c.use_cma:
            cma = CMA(8 * c.n_filters, c.cma_heads, c.cma_feedforward, c.cma_dropout,
                      active_in_eval=c.cma_in_eval)
        self.f_v = VNet(c.in_channels, c.n_classes, c.n_filters, upsampling="transpose")
        self.f_a = VNet(c.in_channels, c.n_classes, c.n_filters, upsampling="trilinear", cma=cma)
        self.proj_v = mlp_head(c.n_filters, c.proj_dim)  # g_v
        self.pred_v = mlp_head(c.proj_dim, c.proj_dim)
        self.proj_a = mlp_head(c.n_filters, c.proj_dim)  # g_a
        self.pred_a = mlp_head(c.proj_dim, c.proj_dim)

    def forward(self, x):
        """x: (b, 1, h, w, d) -> dict of logits_v, logits_a (b, 2, h, w, d) and the last decoder
        features feat_v, feat_a (b, n_filters, h, w, d) that OCC projects."""
        logits_v, feat_v = self.f_v(x, return_features=True)
        logits_a, feat_a = self.f_a(x, return_features=True)
        return {"logits_v": logits_v, "logits_a": logits_a, "feat_v": feat_v, "feat_a": feat_a}

    @torch.no_grad()
    def attention(self, x):
        """CMA's attention weights for the batch x, for visualisation.

        Runs f_a's encoder up to stage 4 in eval mode (no dropout) with CMA forced on and returns
        {"intra": (b, heads, k, k), "inter": (k, heads, b, b)}; the model is left as it was.
        """
        enc = self.f_a.encoder
        if enc.cma is None:
            raise ValueError("this CAMLNet has no CMA (use_cma=False)")
        was_active = enc.cma.active_in_eval
        enc.cma.active_in_eval = True
        try:
            with eval_mode(self):
                _, attn = enc.cma(enc.to_stage4(x)[-1], return_attention=True)
        finally:
            enc.cma.active_in_eval = was_active
        return attn
