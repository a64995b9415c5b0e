import torch

from camlkit.cma import CMA, attention_weights


def _cma(**kw):
    torch.manual_seed(0)
    return CMA(d_model=8, n_heads=2, dim_feedforward=16, dropout=0.0, **kw)


def test_inter_sample_attention_mixes_samples_in_training():
    cma = _cma().train()
    x = torch.randn(3, 8, 2, 2, 2)
    y = x.clone()
    y[1] += 5.0  # change sample 2 only
    assert not torch.allclose(cma(x)[0], cma(y)[0])  # sample 1 sees sample 2


def test_identity_in_eval_mode_by_default():
    cma = _cma().eval()
    x = torch.randn(3, 8, 2, 2, 2)
    assert cma(x) is x
    y = x.clone()
    y[1] += 5.0
    assert torch.equal(cma(x)[0], cma(y)[0])


def test_active_in_eval_keeps_the_mixing():
    cma = _cma(active_in_eval=True).eval()
    x = torch.randn(3, 8, 2, 2, 2)
    y = x.clone()
    y[1] += 5.0
    assert not torch.allclose(cma(x)[0], cma(y)[0])


def test_attention_weights_shapes_rows_and_unchanged_output():
    cma = _cma().train()
    x = torch.randn(3, 8, 2, 3, 2)  # k = 12 tokens
    out, attn = cma(x, return_attention=True)
    assert torch.allclose(out, cma(x))  # dropout 0: deterministic, same output
    assert attn["intra"].shape == (3, 2, 12, 12)
    assert attn["inter"].shape == (12, 2, 3, 3)
    for weights in attn.values():
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-6)
        assert (weights >= 0).all()


def test_attention_weights_match_pytorch_multihead_attention():
    cma = _cma().eval()
    tokens = torch.randn(2, 5, 8)
    _, reference = cma.intra.self_attn(tokens, tokens, tokens, need_weights=True,
                                       average_attn_weights=False)
    assert torch.allclose(attention_weights(cma.intra.self_attn, tokens), reference, atol=1e-6)
