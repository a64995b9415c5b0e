"""Cross-sample Mutual Attention, CMA (paper §2.2, Fig. 1).

Self-attention over every voxel of every sample in a mini-batch would cost O((b h' w' d')^2).
CMA splits it into two standard transformer encoder layers applied one after the other to the
stage-4 features a_in (b, c, h', w', d') of the auxiliary encoder f_a:

* E_1, **intra-sample** attention: each sample is a sequence of k = h' w' d' tokens of size c,
  so every position of a sample attends to every other position of the same sample;
* E_2, **inter-sample** attention: each position is a sequence of the b samples at that position,
  so a labeled and an unlabeled sample exchange information voxel by voxel.

Settings as released (``code/networks/VNet.py`` of github.com/Herschel555/CAML): d_model 128,
4 heads, feed-forward 512, dropout 0.5, ReLU, post-norm — PyTorch's ``TransformerEncoderLayer``
defaults. For a 112x112x80 patch, k = 14x14x10.

**Eval mode.** The released code skips CMA when the model is in eval mode (identity), so inference
never depends on which samples share a batch. That is the default here; ``active_in_eval=True``
keeps it on (the paper's text is silent on this).
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def attention_weights(mha: nn.MultiheadAttention, tokens: torch.Tensor) -> torch.Tensor:
    """Self-attention weights softmax(q k^T / sqrt(d_head)) of ``mha`` for batch-first tokens.

    tokens: (batch, seq, c) -> weights (batch, heads, seq, seq); each row sums to 1. Computed
    from the layer's own projection weights without attention dropout, for visualisation.
    """
    n_heads = mha.num_heads
    q, k, _ = F.linear(tokens, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    q = rearrange(q, "n s (h e) -> n h s e", h=n_heads)
    k = rearrange(k, "n s (h e) -> n h s e", h=n_heads)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (batch, heads, seq, seq)
    return scores.softmax(dim=-1)


def _encoder_layer(d_model, n_heads, dim_feedforward, dropout):
    return nn.TransformerEncoderLayer(
        d_model, n_heads, dim_feedforward, dropout, activation="relu", batch_first=True
    )


class CMA(nn.Module):
    """Intra-sample then inter-sample transformer encoder layer on a (b, c, h, w, d) map."""

    def __init__(self, d_model=128, n_heads=4, dim_feedforward=512, dropout=0.5,
                 active_in_eval=False):
        super().__init__()
        self.intra = _encoder_layer(d_model, n_heads, dim_feedforward, dropout)  # E_1
        self.inter = _encoder_layer(d_model, n_heads, dim_feedforward, dropout)  # E_2
        self.active_in_eval = active_in_eval

    @property
    def active(self):
        return self.training or self.active_in_eval

    def forward(self, a_in, return_attention=False):
        """a_in: (b, c, h, w, d) -> a_out of the same shape.

        With ``return_attention=True`` also returns {"intra": (b, heads, k, k),
        "inter": (k, heads, b, b)} (k = h w d; empty when CMA is inactive); the output is the
        same either way.
        """
        if not self.active:
            return (a_in, {}) if return_attention else a_in
        b, c, h, w, d = a_in.shape
        tokens = rearrange(a_in, "b c h w d -> b (h w d) c")  # one sequence per sample
        intra_out = self.intra(tokens)
        by_position = rearrange(intra_out, "b k c -> k b c")  # one sequence per position
        inter_out = self.inter(by_position)
        a_out = rearrange(inter_out, "(h w d) b c -> b c h w d", h=h, w=w, d=d)
        if not return_attention:
            return a_out
        with torch.no_grad():
            attention = {
                "intra": attention_weights(self.intra.self_attn, tokens),
                "inter": attention_weights(self.inter.self_attn, by_position),
            }
        return a_out, attention
