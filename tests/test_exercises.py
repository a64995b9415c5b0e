"""Tests for camlkit.exercises and course.check / course.solution: camlkit's own functions pass
every case; typical wrong answers are each reported with the line that names their mistake; the
learner's exceptions, stubs and in-place changes are one line each."""

import ast
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from camlkit import course, cps, losses, occ, ramps
from camlkit.caml import CAMLNet
from camlkit.cma import CMA
from camlkit.errors import CamlkitError
from camlkit.exercises import EXERCISES, check_lines, find, is_stub, report
from camlkit.step import StepConfig, caml_step


@pytest.mark.parametrize("name", list(EXERCISES))
def test_camlkit_passes_every_case_of_its_own_exercises(name):
    lines = check_lines(find(name).reference, name)
    assert len(lines) >= 6  # hand cases, random cases, the gradient
    assert all(passed for passed, _ in lines), [line for passed, line in lines if not passed]


def test_the_exercises_follow_the_notebooks_in_order():
    notebooks = [e.notebook for e in EXERCISES.values()]
    assert notebooks == sorted(notebooks)
    assert set(notebooks) == {"02_vnet", "03_mutual_learning", "04_cma", "05_occ", "06_caml_training"}
    assert all(e.grad_case is not None for n, e in EXERCISES.items() if n not in ("sample_unlabeled", "loss_weight"))


def failing(fn, name):
    """The lines of the failing checks."""
    lines = check_lines(fn, name)
    return [line for passed, line in lines if passed is False]


def reported(fn, name, words):
    bad = failing(fn, name)
    assert bad, f"{name}: a wrong answer passed every check"
    assert any(words in line for line in bad), bad


# ----------------------------------------------------------------------------- typical wrong answers

def dice_no_eps(p, y):
    return 1 - 2 * (p * y).sum() / (p.sum() + y.sum())


def dice_coefficient(p, y):
    return (2 * (p * y).sum() + 1e-8) / (p.sum() + y.sum() + 1e-8)


def dice_no_two(p, y):
    return 1 - ((p * y).sum() + 1e-8) / (p.sum() + y.sum() + 1e-8)


def dice_item(p, y):
    return losses.dice_loss(p, y).item()


def sharpen_power_t(p, T=0.1):
    return p**T / (p**T + (1 - p) ** T)


def sharpen_no_denominator(p, T=0.1):
    return p ** (1 / T)


def sharpen_fixed_t(p, T=0.1):
    return p**10 / (p**10 + (1 - p) ** 10)


def sharpen_in_place(p, T=0.1):
    q = 1 - p
    p **= 1 / T  # the right values, but the caller's p is gone
    q **= 1 / T
    return p / (p + q)


def cps_no_sharpening(p_v, p_a, T=0.1):
    return F.mse_loss(p_v, p_a) + F.mse_loss(p_a, p_v)


def cps_not_crossed(p_v, p_a, T=0.1):
    return F.mse_loss(p_v, cps.sharpen(p_v, T)) + F.mse_loss(p_a, cps.sharpen(p_a, T))


def cps_one_way(p_v, p_a, T=0.1):
    return F.mse_loss(p_v, cps.sharpen(p_a, T))


def cps_sign(p_v, p_a, T=0.1):
    return -cps.cps_loss(p_v, p_a, T)


def attention(a_in, w_q, w_k, heads, pattern="b c h w d -> (h w d) b c", scale=True, dim=-1):
    tokens = rearrange(a_in, pattern)
    q = rearrange(tokens @ w_q.T, "n s (h e) -> n h s e", h=heads)
    k = rearrange(tokens @ w_k.T, "n s (h e) -> n h s e", h=heads)
    scores = q @ k.transpose(-1, -2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    return scores.softmax(dim=dim)


def attention_intra(a_in, w_q, w_k, heads):
    return attention(a_in, w_q, w_k, heads, pattern="b c h w d -> b (h w d) c")


def attention_unscaled(a_in, w_q, w_k, heads):
    return attention(a_in, w_q, w_k, heads, scale=False)


def attention_query_softmax(a_in, w_q, w_k, heads):
    return attention(a_in, w_q, w_k, heads, dim=-2)


def omni_times_t(z, z_p, temperature=0.1):
    return torch.softmax(z @ z_p.T * temperature, dim=1)


def omni_wrong_dim(z, z_p, temperature=0.1):
    return torch.softmax(z @ z_p.T / temperature, dim=0)


def omni_transposed(z, z_p, temperature=0.1):
    return torch.softmax(z_p @ z.T / temperature, dim=0)


def omni_no_softmax(z, z_p, temperature=0.1):
    return torch.exp(z @ z_p.T / temperature)


def occ_no_eps(sim_v, sim_a):
    return -(sim_a * torch.log(sim_v)).sum(1).mean()


def occ_sign(sim_v, sim_a):
    return (sim_a * torch.log(sim_v + 1e-8)).sum(1).mean()


def occ_swapped(sim_v, sim_a):
    return -(sim_v * torch.log(sim_a + 1e-8)).sum(1).mean()


def occ_detached_target(sim_v, sim_a):
    return -(sim_a.detach() * torch.log(sim_v + 1e-8)).sum(1).mean()


def sample_by_a(prob_v, prob_a, top_i):
    return occ.sample_unlabeled(prob_a, prob_v, top_i)


def sample_no_agreement(prob_v, prob_a, top_i):
    return occ.sample_unlabeled(prob_v, prob_v, top_i)


def sample_keeps_singletons(prob_v, prob_a, top_i):  # no "at least 2 rows a class" rule
    conf, pred_v = prob_v.max(dim=1)
    agree = pred_v == prob_a.argmax(dim=1)
    index, cls = [], []
    for c in range(prob_v.shape[1]):
        candidates = torch.nonzero(agree & (pred_v == c)).squeeze(1)
        if len(candidates) == 0:
            continue
        top = torch.topk(conf[candidates], min(top_i, len(candidates))).indices
        index.append(candidates[top])
        cls.append(torch.full((len(top),), c, dtype=torch.long))
    return (torch.cat(index), torch.cat(cls)) if index else None


def sample_unsorted(prob_v, prob_a, top_i):
    picked = occ.sample_unlabeled(prob_v, prob_a, top_i)
    return None if picked is None else (picked[0].flip(0), picked[1].flip(0))


def ramp_fraction(iteration, beta, length):
    return beta * math.exp(-5 * (1 - min(iteration / 150, length) / length) ** 2)


def ramp_no_clamp(iteration, beta, length):
    return beta * math.exp(-5 * (1 - (iteration // 150) / length) ** 2) if length else beta


def ramp_no_square(iteration, beta, length):
    return beta * math.exp(-5 * (1 - min(iteration // 150, length) / length)) if length else beta


def total_paper_weights(L_s, l_c, l_o, iteration, ramp_length=40):
    t = iteration + 1
    return L_s + ramps.loss_weight(t, 1.0, ramp_length) * l_c + ramps.loss_weight(t, 0.1, ramp_length) * l_o


def total_no_offset(L_s, l_c, l_o, iteration, ramp_length=40):
    t = iteration
    return 0.5 * L_s + ramps.loss_weight(t, 1.0, ramp_length) * l_c + ramps.loss_weight(t, 0.05, ramp_length) * l_o


def total_swapped(L_s, l_c, l_o, iteration, ramp_length=40):
    t = iteration + 1
    return 0.5 * L_s + ramps.loss_weight(t, 0.05, ramp_length) * l_c + ramps.loss_weight(t, 1.0, ramp_length) * l_o


def total_float(L_s, l_c, l_o, iteration, ramp_length=40):
    t = iteration + 1
    return float(0.5 * L_s + ramps.loss_weight(t, 1.0, ramp_length) * l_c
                 + ramps.loss_weight(t, 0.05, ramp_length) * l_o)


WRONG = [
    ("dice_loss", dice_no_eps, "NaN in the output"),
    ("dice_loss", dice_no_eps, "add eps = 1e-8"),
    ("dice_loss", dice_coefficient, "returns the Dice coefficient"),
    ("dice_loss", dice_no_two, "the factor 2 of the intersection is missing"),
    ("dice_loss", dice_item, "returns a Python float"),
    ("sharpen", sharpen_power_t, "p^T where Eq. 1's sharpening takes p^(1/T)"),
    ("sharpen", sharpen_no_denominator, "without dividing by p^(1/T) + (1 - p)^(1/T)"),
    ("sharpen", sharpen_fixed_t, "ignores the temperature T"),
    ("sharpen", sharpen_in_place, "changes its input p in place"),
    ("cps_loss", cps_no_sharpening, "no sharpening"),
    ("cps_loss", cps_not_crossed, "no crossing"),
    ("cps_loss", cps_one_way, "only one direction"),
    ("cps_loss", cps_sign, "a sign error"),
    ("inter_sample_attention", attention_intra, "E_1's attention within each sample"),
    ("inter_sample_attention", attention_unscaled, "not divided by √d_head"),
    ("inter_sample_attention", attention_query_softmax, "softmax over the wrong dimension"),
    ("omni_correlation", omni_times_t, "similarity times the temperature"),
    ("omni_correlation", omni_wrong_dim, "softmax over the wrong dimension: rows should sum to 1 over dim 1"),
    ("omni_correlation", omni_transposed, "transposed"),
    ("omni_correlation", omni_no_softmax, "wrong sum: rows should sum to 1 over dim 1"),
    ("occ_loss", occ_no_eps, "Eq. 3 takes log(sim_vp + 1e-8)"),
    ("occ_loss", occ_sign, "a sign error"),
    ("occ_loss", occ_swapped, "the branches swapped"),
    ("occ_loss", occ_detached_target, "gradient w.r.t. sim_a disagrees with finite differences"),
    ("sample_unlabeled", sample_by_a, "ranks by f_a's confidence"),
    ("sample_unlabeled", sample_no_agreement, "picks voxels where the branches disagree"),
    ("sample_unlabeled", sample_keeps_singletons, "keeps class 1 with 1 voxel"),
    ("sample_unlabeled", sample_unsorted, "the right voxels in another order"),
    ("loss_weight", ramp_fraction, "it advances in whole steps, e = t // 150"),
    ("loss_weight", ramp_no_clamp, "no min(e, R)"),
    ("loss_weight", ramp_no_square, "without the square"),
    ("total_loss", total_paper_weights, "the paper's weights: the release weights L_s by 0.5"),
    ("total_loss", total_no_offset, "(iteration + 1) // 150"),
    ("total_loss", total_swapped, "lambda_c and lambda_o swapped"),
    ("total_loss", total_float, ".item() or float() cut the autograd graph"),
]


@pytest.mark.parametrize("name, fn, words", WRONG, ids=[f"{n}-{f.__name__}" for n, f, _ in WRONG])
def test_a_typical_wrong_answer_is_reported_with_its_line(name, fn, words):
    reported(fn, name, words)


def test_every_exercise_has_at_least_three_wrong_answers_tested():
    counts = {name: len({fn for n, fn, _ in WRONG if n == name}) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts


# ----------------------------------------------------------------------------- generic diagnoses

def test_an_offset_a_factor_and_a_shape_are_named():
    reported(lambda p, T=0.1: cps.sharpen(p, T) + 0.25, "sharpen", "off by a constant: yours - expected = 0.25")
    reported(lambda p, T=0.1: 2 * cps.sharpen(p, T), "sharpen", "off by a factor: yours = 2 × expected")
    reported(lambda p, y: (p - y).abs(), "dice_loss", "expected a 0-d tensor (a scalar): is a sum or a mean missing?")
    reported(lambda p, T=0.1: cps.sharpen(p, T).double(), "sharpen", "returns float64 for float32 inputs")


def test_not_differentiable_is_named():
    def through_numpy(sim_v, sim_a):
        value = -(sim_a.detach().numpy() * torch.log(sim_v + 1e-8).detach().numpy()).sum(1).mean()
        return torch.tensor(value, dtype=sim_v.dtype)

    reported(lambda z, z_p, t=0.1: occ.omni_correlation(z, z_p, t).detach(), "omni_correlation", "not differentiable")
    lines = failing(through_numpy, "occ_loss")
    assert len(lines) == 1 and "not differentiable" in lines[0]  # the values are right, only the gradient fails


def test_the_learners_exception_is_one_line_with_the_line_of_their_code():
    def broken(p, y):
        inter = (p * y).sum()
        return 1 - 2 * inter / p.sum(dim=5)

    lines = check_lines(broken, "dice_loss")
    assert lines[0][0] is False and len(lines) == 2  # the rest is not run
    assert lines[0][1].startswith("dice_loss · p = [1, 0, 0.5]")
    assert "raises IndexError: Dimension out of range" in lines[0][1]
    line = broken.__code__.co_firstlineno + 2
    assert f"(line {line} of your cell: `return 1 - 2 * inter / p.sum(dim=5)`)" in lines[0][1]
    assert "\n" not in lines[0][1] and "more cases not run" in lines[1][1]


def test_a_wrong_signature_says_so():
    lines = failing(lambda p: p, "cps_loss")
    assert "raises TypeError" in lines[0] and "does the signature match" in lines[0]


def test_a_stub_is_not_written_yet():
    def stub(sim_v, sim_a):
        """Eq. 3."""
        ...

    assert is_stub(stub) and not is_stub(occ.occ_loss) and not is_stub(occ_sign)
    assert check_lines(stub, "occ_loss") == [
        (None, "occ_loss: not written yet — replace the `...` with your code and run the cell again")]
    assert "all" not in report(stub, "occ_loss") and "✗" not in report(stub, "occ_loss")


def test_an_unknown_name_or_a_non_function_is_one_line(capsys):
    course.check(occ.occ_loss, "occ")
    course.check("occ_loss", "occ_loss")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("· no exercise called 'occ'; the exercises are: dice_loss, sharpen, cps_loss, "
                      "inter_sample_attention, omni_correlation, occ_loss, sample_unlabeled, loss_weight, total_loss")
    assert out[1].startswith("· occ_loss: pass your function itself, e.g. course.check(my_occ_loss, 'occ_loss')")
    assert len(out) == 2


def test_course_check_prints_one_line_per_case_and_a_summary(capsys):
    course.check(occ_sign, "occ_loss")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(check_lines(occ.occ_loss, "occ_loss")) + 1
    assert out[0].startswith("✗ occ_loss · the 2x2 of the unit test: a sign error")
    assert out[-2].endswith("gradient (float64): not checked until the values are right")
    assert out[-1] == f"1 of {len(out) - 2} checks pass"  # a one-hot row's l_o is ~0 with either sign
    course.check(occ.occ_loss, "occ_loss")
    assert capsys.readouterr().out.splitlines()[-1] == "all 7 checks pass — compare with course.solution('occ_loss')"


def test_solution_shows_camlkits_code():
    assert course.solution("occ_loss").header.startswith("camlkit/occ.py · occ_loss")
    assert "rearrange(a_in, \"b c h w d -> (h w d) b c\")" in course.solution("inter_sample_attention").code
    with pytest.raises(CamlkitError, match="no exercise called 'occ'"):
        course.solution("occ")


# ----------------------------------------------------------------------------- the composed references

def test_the_attention_reference_is_cmas_inter_sample_attention():
    torch.manual_seed(0)
    cma = CMA(d_model=8, n_heads=2, dim_feedforward=16, dropout=0.0).train()
    with torch.no_grad():
        cma.inter.self_attn.in_proj_bias.zero_()
    a_in = torch.randn(3, 8, 2, 1, 2)
    _, attention = cma(a_in, return_attention=True)
    intra_out = cma.intra(rearrange(a_in, "b c h w d -> b (h w d) c"))
    w_q, w_k, _ = cma.inter.self_attn.in_proj_weight.chunk(3)
    mine = find("inter_sample_attention").reference(
        rearrange(intra_out, "b (h w d) c -> b c h w d", h=2, w=1, d=2), w_q, w_k, 2)
    assert torch.allclose(mine, attention["inter"], atol=1e-6)


def test_the_total_reference_is_what_a_training_step_computes():
    torch.manual_seed(0)
    net = CAMLNet(n_filters=4, proj_dim=8, cma_heads=2, cma_feedforward=16, use_cma=False)
    x, y = torch.randn(4, 1, 16, 16, 16), torch.zeros(4, 16, 16, 16, dtype=torch.long)
    y[:, 4:12, 4:12, 4:12] = 1
    for iteration in (149, 2000):
        loss, parts = caml_step(net, x, y, 2, iteration, StepConfig(use_occ=False, ramp_length=20))
        mine = find("total_loss").reference(parts["L_s"], parts["l_c"], torch.tensor(0.0), iteration, 20)
        assert torch.allclose(mine, loss.detach())


# ----------------------------------------------------------------------------- the notebooks' exercise cells

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def exercise_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if {"exercise", "exercise-solution"} & set(c["metadata"].get("tags", ()))], cells


def stubs(path):
    """{exercise name: (its code cell's source, the parsed def)} of a notebook's exercise cells."""
    found = {}
    for cell in exercise_cells(path)[0]:
        source = "".join(cell["source"])
        tree = ast.parse(source) if cell["cell_type"] == "code" else ast.Module(body=[])
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        if defs:
            found[defs[0].name.removeprefix("my_")] = (source, defs[0])
    return found


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_2_to_6_end_with_their_exercises_in_the_papers_order(path):
    mine, cells = exercise_cells(path)
    expected = [name for name, e in EXERCISES.items() if e.notebook == path.stem]
    assert list(stubs(path)) == expected
    if not expected:
        return
    assert cells[-len(mine):] == mine, f"{path.name}: the exercise section is not at the end"
    for name, (source, fn) in stubs(path).items():
        assert tuple(a.arg for a in fn.args.args) == find(name).params, name
        assert source.rstrip().endswith(f'course.check(my_{name}, "{name}")')
        assert ast.get_docstring(fn), name
    solutions = [c for c in mine if "exercise-solution" in c["metadata"]["tags"]]
    assert ["".join(c["source"]).split("#")[0].strip() for c in solutions] == [
        f'course.solution("{name}")' for name in expected]
    assert all(c["metadata"]["jupyter"]["source_hidden"] for c in solutions)  # collapsed until opened


def test_a_stub_cell_as_committed_says_not_written_yet(capsys):
    for path in sorted(NOTEBOOK_DIR.glob("0[2-6]*.ipynb")):
        for name, (source, _) in stubs(path).items():
            exec(compile(source, f"<{name}>", "exec"), {"course": course})  # noqa: S102 - our own cell
            out = capsys.readouterr().out
            assert out == f"· {name}: not written yet — replace the `...` with your code and run the cell again\n"


def filled_in(source, name):
    """The stub cell with its body calling camlkit's answer through the learner's parameters."""
    params = ", ".join(find(name).params)
    assert "\n    ...\n" in source
    return source.replace("\n    ...\n", f"\n    return exercises.find({name!r}).reference({params})\n")


@pytest.mark.slow
def test_the_exercise_cells_run_in_a_kernel_left_as_stubs_and_filled_in(tmp_path):
    """Both nbval passes in one kernel: every stub says "not written yet"; filled in, every check passes."""
    import nbformat
    from nbclient import NotebookClient

    cells = [nbformat.v4.new_code_cell("from camlkit import course, exercises")]
    names = []
    for path in sorted(NOTEBOOK_DIR.glob("0[2-6]*.ipynb")):
        for name, (source, _) in stubs(path).items():
            names.append(name)
            cells += [nbformat.v4.new_code_cell(source), nbformat.v4.new_code_cell(filled_in(source, name)),
                      nbformat.v4.new_code_cell(f'course.solution("{name}")')]
    broken = "def my_occ_loss(sim_v, sim_a):\n    rows = sim_a * sim_v.log()\n    return rows.sum(dim=2)\n\n" \
             'course.check(my_occ_loss, "occ_loss")'
    cells.append(nbformat.v4.new_code_cell(broken))
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells[1:]]
    plain = ["".join(o.get("data", {}).get("text/plain", "") for o in c.outputs) for c in nb.cells[1:]]
    assert len(names) == len(EXERCISES)
    for k, name in enumerate(names):
        stub, filled, solution = texts[3 * k], texts[3 * k + 1], plain[3 * k + 2]
        assert stub.startswith(f"· {name}: not written yet"), stub
        assert "✗" not in filled and filled.rstrip().splitlines()[-1].startswith("all "), filled
        assert solution.startswith("# camlkit/"), solution
    assert texts[-1].startswith("✗ occ_loss · the 2x2 of the unit test: raises IndexError: Dimension out of range")
    assert "(line 3 of your cell: `return rows.sum(dim=2)`)" in texts[-1].splitlines()[0]  # the cell's own numbering


def test_odd_outputs_are_one_line_each():
    reported(lambda p, T=0.1: "0.5", "sharpen", "returns str, expected a torch.Tensor")
    reported(lambda p, T=0.1: cps.sharpen(p, T).to(torch.complex64), "sharpen", "returns complex64 for float32 inputs")
    reported(lambda p, y: None, "dice_loss", "returns None (is the `return` missing?)")
    reported(lambda v, a, i: [1, 2], "sample_unlabeled", "expected a pair of tensors (index, cls)")
    reported(lambda t, b, R: "beta", "loss_weight", "returns str, expected a number like")


def test_an_exception_on_a_later_case_does_not_stop_the_others():
    def no_zero_check(iteration, beta, length):
        return beta * math.exp(-5 * (1 - min(iteration // 150, length) / length) ** 2)

    lines = check_lines(no_zero_check, "loss_weight")
    bad = [line for passed, line in lines if passed is False]
    assert len(bad) == 1 and "R = 0 means no ramp: beta: raises ZeroDivisionError: division by zero" in bad[0]
    assert sum(passed is True for passed, _ in lines) == len(lines) - 1  # the random cases ran and passed
