"""python -m bench.bench_quick: the recipes it compares, the flags the plan's script trains them
with, the projection's arithmetic, and the bench end to end at the smoke preset's sizes on a
small LA folder (8 training cases, 1 test case)."""

import pytest

from bench.bench_quick import OLD_QUICK, RECIPES, projection, recipe_config, recipe_flags, report, run
from camlkit.cli.train import config_from_args, train_parser
from camlkit.config import make_config, to_dict
from camlkit.data import CASES_FOLDER, read_list


def test_old_is_the_quick_preset_as_pinned(la_dir):
    # the quick preset has not changed since 3b6cd29: OLD_QUICK pins those values
    old, today = recipe_config("old", la_dir), make_config("quick", data=str(la_dir), device="cpu", progress=False)
    assert to_dict(old) == to_dict(today)
    assert (old.iterations, old.step.warmup, old.lr, old.eval_stride) == (2300, 1700, 0.05, (7, 7, 2))
    assert set(RECIPES["old"]) == set() and "iterations" in OLD_QUICK


def test_a_recipes_flags_train_exactly_the_recipe(la_dir):
    assert recipe_flags("old") == ["--preset", "quick"]
    assert recipe_flags("B") == ["--preset", "quick", "--iterations", "1000", "--lr", "0.1", "--step.warmup", "750"]
    for name in RECIPES:  # what scripts/quick_recipe.sh runs is what the bench timed
        args = train_parser().parse_args(recipe_flags(name) + ["--data", str(la_dir), "--device", "cpu", "--quiet"])
        args.argv = []
        assert to_dict(config_from_args(args)) == to_dict(recipe_config(name, la_dir)), name


def test_projection_adds_each_part_times_its_count(la_dir):
    cfg = recipe_config("A", la_dir)  # 1,000 iterations, 750 of them warm-up
    times = {"decode": 0.5, "cases": 80, "warm-up": 0.2, "Eq. 1": 0.6, "read": 0.1, "predict": 1.0,
             "metrics": 0.5}
    part = projection(cfg, times)
    assert part == pytest.approx({"decode": 40.0, "warm-up": 150.0, "Eq. 1": 150.0,
                                  "evaluation": 20 * (0.1 + 0.1 + 1.0 + 0.5)})


@pytest.mark.slow
def test_the_bench_times_every_part_and_prints_the_ratio(la_dir, tmp_path, capsys):
    small = tmp_path / "LA"
    small.mkdir()
    (small / CASES_FOLDER).symlink_to(la_dir / CASES_FOLDER, target_is_directory=True)
    (small / "train.list").write_text("\n".join(read_list(la_dir / "train.list")[:8]) + "\n")
    (small / "test.list").write_text(read_list(la_dir / "test.list")[0] + "\n")
    configs, times = run(["old", "A"], iterations=1, eval_cases=1, data=small, preset="smoke")
    assert configs["A"].iterations == 1000 and configs["old"].iterations == 6  # smoke's own
    for name in ("old", "A"):
        assert times[name]["cases"] == 8  # 4 labeled + 4 unlabeled, decoded once, shared
        assert all(times[name][part] > 0 for part in ("decode", "warm-up", "Eq. 1", "read", "predict",
                                                      "metrics")), times[name]
    report(configs, times, 1, 1)
    out = capsys.readouterr().out
    assert "| old |" in out and "| A |" in out
    assert "old / A: x" in out and "projected old: " in out
