"""camlkit/diagnostics/sentences.py: the words under an omni-correlation matrix, one sentence per
class of rows, checked on matrices whose structure is known by construction."""

import torch

from camlkit.diagnostics.sentences import occ_row_class, occ_row_sentences

# 8 prototypes: 0-3 background, 4-7 atrium; 12 rows: 0-7 background voxels, 8-11 atrium voxels
COLS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
ROWS = torch.tensor([0] * 8 + [1] * 4)


def _rows(*weights):
    return torch.tensor(weights, dtype=torch.float64)


def test_a_bright_column_for_atrium_rows_beside_broad_background_rows():
    broad = [0.14, 0.14, 0.14, 0.14, 0.11, 0.11, 0.11, 0.11]  # sums to 1
    column = [0.01, 0.01, 0.0, 0.0, 0.01, 0.94, 0.02, 0.01]  # prototype 5 takes 94 %
    sim = _rows(*[broad] * 8, *[column] * 4)
    background, atrium = occ_row_sentences(sim, ROWS, COLS)
    assert background.startswith("background rows (8): 56% of their weight on background prototypes")
    assert "broad rows: their largest weight is 14% on average" in background
    assert "bright column" not in background
    assert atrium.startswith("atrium rows (4): 98% of their weight on atrium prototypes")
    assert "a bright column: prototype 5 (atrium) takes 94% of their weight" in atrium
    assert occ_row_class(sim, ROWS, COLS, 1)["top"] == 5


def test_uniform_rows_read_as_blind_to_the_class_and_broad():
    sim = torch.full((12, 8), 1 / 8, dtype=torch.float64)
    for sentence, name in zip(occ_row_sentences(sim, ROWS, COLS), ("background", "atrium")):
        assert f"50% of their weight on {name} prototypes, as rows blind to the class would put" in sentence
        assert "broad rows: their largest weight is 12% on average (a uniform row: 12.5%)" in sentence
        assert sentence.endswith("entropy 1.000.")


def test_block_diagonal_rows_read_as_their_own_class():
    own = {0: [0.25] * 4 + [0.0] * 4, 1: [0.0] * 4 + [0.25] * 4}
    sim = _rows(*[own[int(c)] for c in ROWS])
    background, atrium = occ_row_sentences(sim, ROWS, COLS, who="block")
    assert background.startswith("block: background rows (8): 100% of their weight on background "
                                 "prototypes (chance 50%): their own class")
    assert atrium.startswith("block: atrium rows (4): 100% of their weight on atrium prototypes")
    assert "entropy 0.667" in background  # log 4 / log 8


def test_rows_on_the_other_class_and_peaked_rows_on_different_prototypes():
    sim = torch.zeros(12, 8, dtype=torch.float64)
    for i in range(8):  # each background row one-hot on a different atrium prototype
        sim[i, 4 + i % 4] = 1.0
    sim[8:, 0] = 1.0  # atrium rows all on background prototype 0
    background, atrium = occ_row_sentences(sim, ROWS, COLS)
    assert "100% of their weight on atrium prototypes (chance 50%): the other class" in background
    assert "peaked rows, each on a prototype of its own (largest weight 100% on average" in background
    assert "a bright column: prototype 0 (background) takes 100% of their weight" in atrium


def test_draws_read_per_class_of_rows_and_say_when_the_reading_changes():
    from camlkit.diagnostics.sentences import occ_draw_sentences, occ_row_classes

    broad = [0.14, 0.14, 0.14, 0.14, 0.11, 0.11, 0.11, 0.11]
    column = [0.01, 0.01, 0.0, 0.0, 0.01, 0.94, 0.02, 0.01]
    spread_out = [0.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25]
    same = _rows(*[broad] * 8, *[column] * 4)
    other = _rows(*[broad] * 8, *[spread_out] * 4)
    draws = [{"by_class": occ_row_classes(m, ROWS, COLS)} for m in (same, same, other)]
    background, atrium = occ_draw_sentences(draws, "trained")
    assert background == ("trained: background rows over 3 draws: own-class mass 56% ± 0%, the most-read "
                          "prototype takes 14% ± 0%; every draw reads the same (class-blind, broad rows).")
    assert atrium.startswith("trained: atrium rows over 3 draws: own-class mass 99% ± 1%, the most-read "
                             "prototype takes 71% ± 40%")
    assert atrium.endswith("the reading depends on the draw: own class, a bright column / own class, broad rows.")
