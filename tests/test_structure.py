"""camlkit.diagnostics.structure: each figure on small hand-made inputs whose answer is known."""

import math

import pytest
import torch

from camlkit.diagnostics import measure, structure
from camlkit.diagnostics.sentences import occ_row_classes


def test_entropy_uniform_one_hot_and_two_point():
    assert structure.normalised_entropy(torch.full((5, 8), 1 / 8)) == pytest.approx(1.0)
    assert structure.normalised_entropy(torch.eye(4)) == pytest.approx(0.0)
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # log 2 / log 4
    assert structure.normalised_entropy(half) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 2"):
        structure.normalised_entropy(torch.ones(3, 1))


def test_token_atrium_majority_of_each_block_in_cma_order():
    label = torch.zeros(1, 16, 8, 8, dtype=torch.long)  # token grid (2, 1, 1): two 8^3 blocks
    label[0, 8:, :, :4] = 1  # half of the second block
    label[0, :8, :, :3] = 1  # 3/8 of the first block
    assert structure.token_atrium(label, (2, 1, 1)).tolist() == [[False, True]]


def _intra(weights):
    return torch.as_tensor(weights, dtype=torch.float64)[None, None]  # (1 sample, 1 head, k, k)


def test_atrium_mass_all_on_atrium_uniform_and_none():
    atrium = torch.tensor([[True, True, False, False, False]])  # chance 2/5
    on_atrium = torch.zeros(5, 5)
    on_atrium[:, :2] = 0.5  # every query splits its weight over the two atrium tokens
    assert structure.atrium_attention(_intra(on_atrium), atrium) == pytest.approx((1.0, 0.4))
    uniform = torch.full((5, 5), 0.2)
    assert structure.atrium_attention(_intra(uniform), atrium) == pytest.approx((0.4, 0.4))
    away = torch.zeros(5, 5)
    away[:, 4] = 1.0
    assert structure.atrium_attention(_intra(away), atrium) == pytest.approx((0.0, 0.4))


def test_atrium_mass_only_counts_atrium_queries_and_skips_samples_without_atrium():
    weights = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    weights[0, 0, :2, 0] = 1.0  # atrium queries 0, 1 read token 0 (atrium)
    weights[0, 0, 2:, 3] = 1.0  # background queries read background: not counted
    weights[1, 0, :, :] = 0.25  # sample 1 has no atrium: skipped
    atrium = torch.tensor([[True, False, False, False], [False] * 4])
    assert structure.atrium_attention(weights, atrium) == pytest.approx((1.0, 0.25))
    with pytest.raises(ValueError, match="no sample holds an atrium token"):
        structure.atrium_attention(weights, torch.zeros(2, 4, dtype=torch.bool))


def test_attention_figures_and_their_sentence():
    atrium = torch.tensor([[True, False, False, False]])
    figures = structure.attention_figures(_intra(torch.full((4, 4), 0.25)), atrium,
                                          torch.full((4, 1, 2, 2), 0.5))
    assert figures == pytest.approx({"atrium_mass": 0.25, "chance": 0.25, "entropy": 1.0,
                                     "entropy_inter": 1.0})
    sentence = structure.read_attention(figures, "random weights")
    assert sentence.startswith("random weights: atrium queries put 0.250")
    assert "at chance" in sentence and "flat as uniform" in sentence
    assert "at chance" in structure.read_attention(dict(figures, atrium_mass=0.26))
    assert "barely above chance" in structure.read_attention(dict(figures, atrium_mass=0.3))
    peaked = dict(figures, atrium_mass=0.9, entropy=0.2)
    assert "well above chance" in structure.read_attention(peaked)
    assert "peaked rows" in structure.read_attention(peaked)


def test_same_class_mass_block_diagonal_uniform_and_swapped():
    col = torch.tensor([0, 0, 1, 1])
    row = torch.tensor([0, 1, 1])
    block = torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 1.0, 0]])
    assert structure.same_class_mass(block, row, col) == pytest.approx((1.0, 0.5))
    assert structure.same_class_mass(torch.full((3, 4), 0.25), row, col) == pytest.approx((0.5, 0.5))
    swapped = torch.tensor([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    assert structure.same_class_mass(swapped, row, col) == pytest.approx((0.0, 0.5))


def test_same_class_mass_weighs_classes_not_rows():
    col = torch.tensor([0, 1])
    row = torch.tensor([0, 0, 0, 1])  # three background rows, one atrium row
    sim = torch.tensor([[1.0, 0], [1.0, 0], [1.0, 0], [1.0, 0]])  # all on the background column
    mass, chance = structure.same_class_mass(sim, row, col)
    assert (mass, chance) == pytest.approx((0.5, 0.5))  # (1 + 0) / 2, not 3/4


def test_collapse_share_one_column_and_diagonal():
    one_column = torch.zeros(6, 4)
    one_column[:, 2] = 1.0
    assert structure.collapse_share(one_column) == 1.0
    assert structure.collapse_share(torch.eye(4)) == 0.25
    two_thirds = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert structure.collapse_share(two_thirds) == pytest.approx(2 / 3)


def test_collapse_by_class_names_the_rows_and_the_prototype_class():
    col = torch.tensor([0, 0, 1, 1])
    row = torch.tensor([0, 0, 0, 0, 1, 1])
    sim = torch.zeros(6, 4)
    sim[:4, 3] = 1.0  # every background row on atrium prototype 3
    sim[4, 2], sim[5, 0] = 1.0, 1.0  # atrium rows split
    assert structure.collapse_by_class(sim, row, col) == {0: (1.0, 1), 1: (0.5, 0)}


def test_occ_figures_of_a_collapse_and_their_sentence():
    col = torch.tensor([0, 0, 1, 1])
    row = torch.tensor([0, 0, 1, 1])
    sim = torch.zeros(4, 4)
    sim[:, 3] = 1.0  # every row on the same atrium prototype
    figures = structure.occ_figures(sim, row, col)
    by_class = figures.pop("same_class_by_class")
    assert figures == pytest.approx({"same_class": 0.5, "chance": 0.5, "collapse": 1.0,
                                     "entropy": 0.0, "collapse_weight": 1.0})
    assert by_class == {0: 0.0, 1: 1.0}  # background rows on an atrium prototype
    sentence = structure.read_occ({**figures, "same_class_by_class": by_class}, "trained")
    assert sentence.startswith("trained: same-class mass 50.0% vs chance 50%")
    assert "at chance" in sentence and "collapsed: 100% of rows" in sentence
    assert "background rows 0%, atrium rows 100%" in sentence
    assert "nearly every row looks at atrium prototypes" in sentence
    spread = structure.occ_figures(torch.eye(8), torch.arange(8) // 4, torch.arange(8) // 4)
    assert math.isclose(spread["same_class"], 1.0) and spread["collapse"] == 1 / 8
    assert "well above chance" in structure.read_occ(spread)
    assert "no collapse" in structure.read_occ(spread)


def test_same_class_by_class_tells_uniform_rows_from_one_sided_ones():
    row, col = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    uniform = torch.full((4, 4), 0.25)
    one_sided = torch.tensor([[0.5, 0.5, 0, 0]] * 4)  # every row on background prototypes
    assert structure.same_class_mass(uniform, row, col) == structure.same_class_mass(one_sided, row, col)
    assert structure.same_class_by_class(uniform, row, col) == {0: 0.5, 1: 0.5}
    assert structure.same_class_by_class(one_sided, row, col) == {0: 1.0, 1: 0.0}
    assert "looks at" not in structure.read_occ(structure.occ_figures(uniform, row, col))


def test_collapse_weight_tells_a_bright_column_from_broad_rows_sharing_an_argmax():
    broad = torch.full((4, 10), 0.09)
    broad[:, 3] = 0.19  # every row's top prototype is 3, with 19 % of the weight
    assert structure.collapse_share(broad) == 1.0
    assert structure.collapse_weight(broad) == pytest.approx(0.19)
    sentence = structure.read_occ(structure.occ_figures(broad, torch.tensor([0, 0, 1, 1]),
                                                        torch.tensor([0] * 5 + [1] * 5)))
    assert "no bright column: 100% of rows share a top prototype" in sentence


@pytest.fixture(scope="module")
def smoke_net(la_dir, tmp_path_factory):
    """A smoke-trained CAMLNet (both classes predicted), its settings and real LA crops."""
    from camlkit.data import load_split
    from camlkit.lab.runs import train_short
    from camlkit.runtime.trained import load_trained, matched_crops

    root = tmp_path_factory.mktemp("runs")
    net, settings = load_trained(train_short("smoke", la_dir, root=root, progress=False))
    split = load_split(la_dir, 4)
    labeled = matched_crops(split.labeled[:2], settings, seed=0)
    unlabeled = matched_crops(split.unlabeled[:2], settings, seed=1)
    return net, settings, labeled, unlabeled["image"]


@pytest.mark.slow  # smoke_net: a smoke training run (16 s setup)
def test_network_figures_on_real_crops(la_dir, smoke_net):
    """The network-level helpers on real LA crops: a random CAMLNet, whose rows are close to
    uniform and whose predictions hold one class only (OCC undefined), and a smoke-trained one."""
    from camlkit.caml import CAMLNet
    from camlkit.data import load_split
    from camlkit.runtime.trained import InputSettings, TrainedSettings, matched_crops
    from camlkit.step import StepConfig

    split = load_split(la_dir, 4)
    settings = TrainedSettings(inputs=InputSettings(scale=0.25, zscore_case=True, patch_size=(32, 32, 16)),
                               n_filters=2)
    labeled = matched_crops(split.labeled[:2], settings, seed=0)
    torch.manual_seed(0)
    random = CAMLNet(n_filters=2, proj_dim=8)
    attn = measure.network_attention(random, labeled["image"], labeled["label"])
    assert attn["intra"].shape == (2, 4, 32, 32) and attn["grid"] == (4, 4, 2)
    assert attn["atrium"].shape == (2, 32)
    assert attn["figures"]["entropy"] > 0.9  # a random network's rows are close to uniform
    unlabeled = matched_crops(split.unlabeled[:2], settings, seed=1)
    with pytest.raises(ValueError, match="embeddings per class"):
        measure.network_occ(random, labeled, unlabeled["image"], StepConfig(j=8, top_i=32))

    net, settings, labeled, unlabeled = smoke_net
    cfg = StepConfig(j=8, top_i=32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    measured = measure.network_occ(net, labeled, unlabeled, cfg, draws=3)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # net untouched
    sim = measured["sim_vp"]
    assert measured["j"] == 8 and sim.shape == (len(measured["row_class"]), 16)
    assert set(measured["row_class"].tolist()) == {0, 1}
    assert torch.allclose(sim.sum(1), torch.ones(len(sim), dtype=sim.dtype))
    assert measured["figures"] == structure.occ_figures(sim, measured["row_class"], measured["col_class"])
    assert [d["seed"] for d in measured["draws"]] == [0, 1, 2]
    assert measured["draws"][0] == {"seed": 0, "l_o": measured["l_o"], "figures": measured["figures"],
                                    "by_class": occ_row_classes(measured["sim_vp"], measured["row_class"],
                                                                measured["col_class"])}
    assert len({d["l_o"] for d in measured["draws"]}) > 1  # other prototypes, another l_o
    again = measure.network_occ(net, labeled, unlabeled, cfg)
    assert torch.equal(again["sim_vp"], sim)  # seeded
    cosine = measure.network_occ(net, labeled, unlabeled, StepConfig(j=8, top_i=32, similarity="cosine"))
    assert cosine["sim_vp"].shape == sim.shape and not torch.equal(cosine["sim_vp"], sim)
    capped = measure.network_occ(net, labeled, unlabeled, StepConfig(j=10**6, top_i=32))
    assert capped["j"] == int(capped["bank"].class_counts().min())  # a small bank caps j
    twin = CAMLNet(net.config)  # random weights at the voxels the trained network picks
    baseline = measure.network_occ(twin, labeled, unlabeled, cfg, select=net)
    assert torch.equal(baseline["row_class"], measured["row_class"])
    assert torch.equal(baseline["bank"].counts, measured["bank"].counts)
    assert not torch.equal(baseline["sim_vp"], sim)


class _SeededBank:
    """A memory bank that seeds torch just before its draw, as network_occ does."""

    def __init__(self, bank, seed):
        self.bank, self.seed = bank, seed

    def __getattr__(self, name):
        return getattr(self.bank, name)

    def sample(self, j):
        torch.manual_seed(self.seed)
        return self.bank.sample(j)


@pytest.mark.slow  # smoke_net: a smoke training run (16 s setup)
@pytest.mark.parametrize("heads_on", ["agreeing", "picked"])
@pytest.mark.parametrize("occ_log", ["eps", "log_softmax"])
def test_network_occ_l_o_is_the_training_steps_l_o(smoke_net, heads_on, occ_log):
    """The analysis's l_o equals the one a training step computes on the same batch, weights and
    draw of prototypes (the same seed before the forward and before the draw)."""
    import copy

    from camlkit.occ import MemoryBank
    from camlkit.step import StepConfig, caml_step

    net, _, labeled, unlabeled = smoke_net
    cfg = StepConfig(j=8, top_i=32, heads_on=heads_on, occ_log=occ_log)
    measured = measure.network_occ(net, labeled, unlabeled, cfg, seed=5)
    assert measured["j"] == cfg.j  # the bank holds 8 of each class: nothing capped

    training = copy.deepcopy(net).train()
    image = torch.cat([labeled["image"], unlabeled])
    label = torch.cat([labeled["label"], torch.zeros_like(labeled["label"])])  # unlabeled: unread
    bank = _SeededBank(MemoryBank(2, net.config.proj_dim), seed=5)
    torch.manual_seed(5)
    loss, parts = caml_step(training, image, label, 2, 100, cfg, bank, slots=[0, 1])
    loss.backward()  # the step is a real training step, with its graph
    assert parts["l_o"] > 0
    assert float(parts["l_o"]) == pytest.approx(measured["l_o"], rel=1e-6, abs=1e-7)
    assert torch.equal(bank.counts, measured["bank"].counts)


@pytest.mark.slow  # smoke_net: a smoke training run (16 s setup)
def test_the_heads_option_changes_the_rows(smoke_net):
    """heads_on is not a no-op here: BatchNorm over all agreeing voxels vs over the picked ones."""
    from camlkit.step import StepConfig

    net, _, labeled, unlabeled = smoke_net
    agreeing = measure.network_occ(net, labeled, unlabeled, StepConfig(j=8, top_i=32))
    picked = measure.network_occ(net, labeled, unlabeled, StepConfig(j=8, top_i=32, heads_on="picked"))
    assert torch.equal(agreeing["row_class"], picked["row_class"])
    assert not torch.allclose(agreeing["z_v"], picked["z_v"])


def test_read_draws_says_when_the_verdict_depends_on_the_draw():
    def draw(same, collapse, l_o):
        return {"l_o": l_o, "figures": {"same_class": same, "chance": 0.5, "collapse": collapse,
                                        "collapse_weight": 0.9, "entropy": 0.1}}

    steady = [draw(0.9, 0.1, 1.0), draw(0.92, 0.12, 1.2)]
    sentence = structure.read_draws(steady, "trained")
    assert sentence.startswith("trained: over 2 draws, same-class mass 91.0% ± 1.4% (90.0% to 92.0%), "
                               "collapse 11% ± 1% (10% to 12%), entropy 0.100 ± 0.000 (0.100 to "
                               "0.100), l_o 1.1000 ± 0.1414 (1.0000 to 1.2000)")
    assert "every draw reads the same (well above chance, no collapse, peaked rows)" in sentence
    shaky = [draw(0.9, 0.1, -1e-9), draw(0.5, 0.9, 0.0)]
    sentence = structure.read_draws(shaky)
    assert "the verdict depends on the draw: well above chance / at chance; no collapse / collapsed" in sentence
    assert "-0" not in sentence and "l_o 0.0000 ± 0.0000 (0.0000 to 0.0000)" in sentence
