"""bench.bench_evaluate at a tiny size: the release's loop over the whole CAML network (its first
output) and camlkit's sliding window over f_v give the same labels, and the release's side really
runs both branches per window while camlkit's runs f_v only."""

import numpy as np
import torch

from bench.bench_evaluate import FirstOutput, compare_case, release_predict
from camlkit.caml import CAMLNet

PATCH, STRIDE = (32, 32, 16), (8, 8, 4)


def tiny_net():
    torch.manual_seed(0)
    return CAMLNet(n_filters=2, proj_dim=8).eval()


def count_calls(module):
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_the_release_side_runs_both_branches_and_keeps_the_first_output():
    net = tiny_net()
    x = torch.randn(1, 1, *PATCH)
    with torch.no_grad():
        assert torch.equal(FirstOutput(net)(x), net.f_v(x))
    f_v_calls, f_a_calls = count_calls(net.f_v), count_calls(net.f_a)
    image = np.random.default_rng(0).standard_normal((40, 36, 20)).astype(np.float32)
    release_predict(FirstOutput(net), image, PATCH, STRIDE[0], STRIDE[2])
    windows = 2 * 2 * 2  # per axis: ceil((40-32)/8)+1, ceil((36-32)/8)+1, ceil((20-16)/4)+1
    assert len(f_v_calls) == len(f_a_calls) == windows


def test_compare_case_finds_the_same_labels_and_times_both_ways():
    net = tiny_net()
    image = np.random.default_rng(1).standard_normal((40, 36, 20)).astype(np.float32)
    f_a_calls = count_calls(net.f_a)
    row = compare_case(net, image, repeat=1, batch_size=3, network="caml", patch=PATCH, stride=STRIDE)
    assert row["bad"] == 0 and row["max_dp"] < 1e-4
    assert row["release"] > 0 and row["camlkit"] > 0
    assert len(f_a_calls) == 1 + 8  # the warm-up window and the release loop's 8; camlkit none
    f_a_calls.clear()
    compare_case(net, image, repeat=1, batch_size=3, network="vnet", patch=PATCH, stride=STRIDE)
    assert not f_a_calls
