"""Project the quick recipe's wall time: the old ``quick`` preset and candidate recipes side by side.

    python -m bench.bench_quick                                   every recipe, 24 iterations a phase, 2 cases
    python -m bench.bench_quick --recipes old A --iterations 12 --eval-cases 1
    python -m bench.bench_quick --flags A                         candidate A's `camlkit train` flags

(from the repository root: bench/ is run as modules, see bench/__init__.py)

A recipe is the ``quick`` preset with some fields replaced (:data:`RECIPES`; ``old`` replaces
none: the preset as at commit 3b6cd29, whose values today's preset keeps). What ``camlkit train``
spends on a quick run, and how this bench measures each part on the real LA data
(camlkit.data.folder.find_data_dir) in one process, all recipes side by side:

* **decode**: every training case read, z-scored and resampled once before the first iteration
  (camlkit.data.batches.training_dataset): each distinct way of preparing the cases decodes
  them all, timed, and the recipes that share it share the decoded cases;
* **warm-up** and **Eq. 1** iterations: ``--iterations`` of each phase, each after one untimed
  iteration, as ``camlkit train`` runs them (training_loader from the phase's first iteration,
  so the batches, learning rates and ramps are the run's own; the network in the recipe's memory
  format; camlkit.train.train_iteration), data loading included. The memory bank starts as full
  as in training once every labeled case was seen (bench.inputs.filled_bank). The recipes take
  turns, one iteration each, so that a change in the machine's load falls on all of them.
  Recipes that differ only in their length and schedule (:data:`SCHEDULE_FIELDS`: iterations,
  warm-up, learning rate) cost the same per iteration and share one measurement, so their
  ratios are those of their iteration counts;
* **evaluation**: ``--eval-cases`` of test.list per recipe (the same cases for each, taking
  turns), split into reading the case, the sliding-window prediction at the recipe's patch,
  scale and stride (f_v of the recipe's Eq. 1 network, eval mode), and the four metrics
  (computed on the label shifted by 2 voxels, a realistic mask, so an untrained network's empty
  prediction does not make them free); recipes alike but for the stride share the network's
  timings. ``camlkit train`` reads each test case once more before
  training (camlkit.runtime.preflight.check_test_set): counted as 20 more reads.

Projected total = decode + warm-up iterations x s/it + Eq. 1 iterations x s/it + 20 x (read +
eval s/case): the parts that grow with the recipe. Not counted (the same for every recipe): the
process start, checkpoints every 250 iterations, curves.png. Figures are medians; on a machine
others use every figure is contended, so compare the ratios printed beside them.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch

from bench.inputs import filled_bank
from camlkit.caml import CAMLNet
from camlkit.cli.train import config_to_args
from camlkit.config import make_config, to_dict
from camlkit.data import load_split, read_case
from camlkit.data.batches import training_dataset, training_loader
from camlkit.data.folder import find_data_dir
from camlkit.evaluation.inference import predict_volume
from camlkit.evaluation.metrics import case_metrics
from camlkit.runtime.trained import InputSettings
from camlkit.train import Eq1Module, make_optimizer, seed_everything, train_iteration

TEST_CASES = 20  # test.list: what the end of a quick run evaluates

# The quick preset as at commit 3b6cd29 (issue 30's baseline): every field it sets, pinned here so
# that "old" stays that recipe once the preset changes (tests/test_bench_quick.py: today's is equal)
OLD_QUICK = {"labeled": 16, "iterations": 2300, "lr": 0.05, "lr_schedule": "cosine", "patch_size": (48, 48, 32),
             "scale": 0.4, "zscore_case": True, "eval_stride": (7, 7, 2), "checkpoint_every": 250,
             "log_every": 10, "model.n_filters": 8, "step.warmup": 1700, "step.j": 128, "step.top_i": 2000,
             "step.ramp_length": 4, "step.iterations_per_epoch": 50}

# Candidate recipes: fields of OLD_QUICK replaced, by path (camlkit.config.make_config).
# Pre-registered in results/quick_recipe/PLAN.md, which gives each one's reason.
RECIPES = {
    "old": {},  # 1,700 warm-up + 600 Eq. 1 iterations, lr 0.05 cosine, eval stride 7,7,2
    "A": {"iterations": 1000, "step.warmup": 750},  # old shortened, its warm-up share kept
    "B": {"iterations": 1000, "step.warmup": 750, "lr": 0.1},  # A with twice the learning rate
    "C": {"iterations": 900, "step.warmup": 500},  # more of the budget in Eq. 1
    "D": {"iterations": 1600, "step.warmup": 1200, "patch_size": (32, 32, 32)},  # smaller crops, more steps
    # timed only (PLAN.md: what a coarser stride, another memory format or a loader worker would save)
    "A-s14": {"iterations": 1000, "step.warmup": 750, "eval_stride": (14, 14, 4)},
    "old-cl-off": {"channels_last": False},
    "old-workers1": {"num_workers": 1},
}


# ----------------------------------------------------------------------------- helpers

def recipe_config(name, data, preset="quick"):
    """The resolved config of recipe ``name`` on the LA folder ``data``: OLD_QUICK with the
    recipe's fields; on another ``preset`` (``smoke``: the tests) that preset with them."""
    base = OLD_QUICK if preset == "quick" else {}
    return make_config(preset, data=str(data), device="cpu", progress=False, **{**base, **RECIPES[name]})


def recipe_flags(name) -> list:
    """The ``camlkit train`` flags that turn ``--preset quick`` into recipe ``name`` (no --data)."""
    args = config_to_args(make_config("quick", data=".", **{**OLD_QUICK, **RECIPES[name]}))
    at = args.index("--data")
    return args[:at] + args[at + 2:]


def data_key(cfg):
    """What decides how the training cases are prepared: recipes alike share decoded cases."""
    return cfg.labeled, cfg.val_cases, cfg.unlabeled_bs > 0, cfg.scale, cfg.zscore_case


# what a run's length and schedule set: no iteration and no evaluated case costs more or less by them
SCHEDULE_FIELDS = ("preset", "out", "iterations", "lr", "lr_schedule", "step.warmup", "eval_stride",
                   "checkpoint_every", "log_every", "progress")


def cost_key(cfg, *keep):
    """What one iteration of each phase costs depends on: every field of ``cfg`` but
    :data:`SCHEDULE_FIELDS` (except those in ``keep``: "eval_stride" for an evaluated case), and
    which phases the run has. Recipes with one key share one measurement."""
    fields = tuple((path, json.dumps(value)) for path, value in to_dict(cfg).items()
                   if path not in SCHEDULE_FIELDS or path in keep)
    return fields, cfg.step.warmup > 0, cfg.iterations > cfg.step.warmup


def decode_all(cfg):
    """(the training dataset with every case decoded, seconds per case)."""
    dataset = training_dataset(cfg)
    t0 = time.perf_counter()
    for index in range(len(dataset)):
        dataset.load(index)
    return dataset, (time.perf_counter() - t0) / len(dataset)


def phase_iterations(cfg, dataset, first, count):
    """Iterations ``first`` .. ``first + count`` of ``cfg``'s run, one at a time (a generator,
    so the caller interleaves phases and recipes): yields None after the first (untimed), the
    seconds of each of the ``count`` others, then the network."""
    seed_everything(cfg.seed)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    net = CAMLNet(cfg.model).to(memory_format=layout).train()
    optimizer = make_optimizer(cfg, net)
    module = Eq1Module(net, cfg.step, filled_bank(cfg, torch.device("cpu")) if cfg.step.use_occ else None)
    batches = iter(training_loader(cfg, start=first, dataset=dataset))
    for k in range(count + 1):
        start = time.perf_counter()
        train_iteration(module, optimizer, next(batches), cfg, first + k, torch.device("cpu"), layout)
        yield (time.perf_counter() - start) if k else None
    yield net


def timed_case(cfg, net, path):
    """(read, predict, metrics) seconds of one evaluated case (see the module docstring)."""
    t0 = time.perf_counter()
    image, label = read_case(path)
    t1 = time.perf_counter()
    predict_volume(net.f_v, image, InputSettings.of(cfg))
    t2 = time.perf_counter()
    case_metrics(np.roll(label, 2, axis=0), label)  # a realistic mask: the label 2 voxels off
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def projection(cfg, times):
    """{part: projected seconds} of a whole run of ``cfg`` from the bench's ``times``."""
    warmup = min(cfg.step.warmup, cfg.iterations)
    return {"decode": times["decode"] * times["cases"],
            "warm-up": warmup * times["warm-up"],
            "Eq. 1": (cfg.iterations - warmup) * times["Eq. 1"],
            "evaluation": TEST_CASES * (2 * times["read"] + times["predict"] + times["metrics"])}


# ----------------------------------------------------------------------------- the bench

def run(names, iterations, eval_cases, data, preset="quick"):
    """(configs, times) of the recipes ``names``: {name: {part: seconds}} (see the docstring).
    Recipes whose iterations cost the same (:func:`cost_key`) share one measurement."""
    configs = {name: recipe_config(name, data, preset) for name in names}
    times = {name: {} for name in names}
    datasets = {}
    for name, cfg in configs.items():  # decode: once per way of preparing the cases
        key = data_key(cfg)
        if key not in datasets:
            datasets[key] = decode_all(cfg)
            print(f"decode: {datasets[key][1]:.3f} s/case x {len(datasets[key][0])} cases", flush=True)
        times[name]["cases"] = len(datasets[key][0])
        times[name]["decode"] = datasets[key][1]

    # warm-up and Eq. 1, every measured recipe's two phases taking turns one iteration at a time
    measured = {}  # cost key -> the recipe measured for it
    for name, cfg in configs.items():
        measured.setdefault(cost_key(cfg), name)
    phases = {}
    for name in measured.values():
        cfg, dataset = configs[name], datasets[data_key(configs[name])][0]
        if cfg.step.warmup:
            phases[name, "warm-up"] = phase_iterations(cfg, dataset, 0, iterations)
        if cfg.iterations > cfg.step.warmup:
            phases[name, "Eq. 1"] = phase_iterations(cfg, dataset, cfg.step.warmup, iterations)
    seconds = {key: [] for key in phases}
    nets = {}
    for _ in range(iterations + 2):
        for key, phase in phases.items():
            value = next(phase)
            if isinstance(value, float):
                seconds[key].append(value)
            elif value is not None:
                nets[key[0]] = value  # the last phase's network evaluates
    for name, cfg in configs.items():
        source = measured[cost_key(cfg)]
        for phase in ("warm-up", "Eq. 1"):
            values = seconds.get((source, phase))
            times[name][phase] = statistics.median(values) if values else 0.0
        times[name]["measured as"] = source
    for name in measured.values():
        print(f"{name}: warm-up {times[name]['warm-up']:.3f} s/it, Eq. 1 {times[name]['Eq. 1']:.3f} s/it "
              f"(medians of {iterations})", flush=True)

    # evaluation: the same test cases for every recipe's stride, taking turns
    cases = load_split(data, 0).test[:eval_cases]
    evaluated = {}  # cost key with the stride -> the recipe evaluated for it
    for name, cfg in configs.items():
        evaluated.setdefault(cost_key(cfg, "eval_stride"), name)
    parts = {name: [] for name in evaluated.values()}
    for path in cases:
        for name in parts:
            net = nets[measured[cost_key(configs[name])]].eval()
            parts[name].append(timed_case(configs[name], net, path))
    for name, cfg in configs.items():
        source = evaluated[cost_key(cfg, "eval_stride")]
        for k, part in enumerate(("read", "predict", "metrics")):
            times[name][part] = statistics.median(p[k] for p in parts[source])
    return configs, times


def report(configs, times, iterations, eval_cases):
    totals = {name: sum(projection(cfg, times[name]).values()) for name, cfg in configs.items()}
    print(f"medians of {iterations} iterations a phase and {eval_cases} test case(s) a recipe:")
    for name, cfg in configs.items():
        t = times[name]
        shared = f" (iterations timed as {t['measured as']}'s: the same sizes)" if t["measured as"] != name else ""
        print(f"{name}: {' '.join(recipe_flags(name)[2:]) or '(the quick preset)'}{shared}")
        print(f"  decode {t['decode']:.3f} s/case x {t['cases']}; warm-up {t['warm-up']:.3f} s/it x "
              f"{min(cfg.step.warmup, cfg.iterations)}; Eq. 1 {t['Eq. 1']:.3f} s/it x "
              f"{cfg.iterations - min(cfg.step.warmup, cfg.iterations)}; evaluation "
              f"{t['read']:.3f} read + {t['predict']:.3f} predict + {t['metrics']:.3f} metrics s/case, "
              f"stride {cfg.eval_stride}")
    print("| recipe | decode s | warm-up s | Eq. 1 s | evaluation s | projected total | old / recipe |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = totals.get("old")
    for name, cfg in configs.items():
        part = projection(cfg, times[name])
        ratio = f"x{base / totals[name]:.2f}" if base else "–"
        print(f"| {name} | {part['decode']:.0f} | {part['warm-up']:.0f} | {part['Eq. 1']:.0f} | "
              f"{part['evaluation']:.0f} | {totals[name]:.0f} s ({totals[name] / 60:.1f} min) | {ratio} |")
    for name in configs:
        print(f"projected {name}: {totals[name]:.1f} s")
        if base and name != "old":
            print(f"old / {name}: x{base / totals[name]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--iterations", type=int, default=24, help="timed iterations of each phase")
    parser.add_argument("--eval-cases", type=int, default=2, help="test cases evaluated per recipe")
    parser.add_argument("--flags", choices=list(RECIPES), help="print this recipe's camlkit train flags")
    parser.add_argument("--preset", default="quick", choices=("quick", "smoke"),
                        help="smoke: each recipe's own fields on the smoke preset (seconds; the tests)")
    args = parser.parse_args()
    if args.flags:
        print(" ".join(recipe_flags(args.flags)))
        return
    if args.iterations < 1 or args.eval_cases < 1:
        parser.error("--iterations and --eval-cases: 1 or more")
    data = find_data_dir()
    print(f"bench_quick: data {data}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"recipes {', '.join(args.recipes)}", flush=True)
    configs, times = run(args.recipes, args.iterations, args.eval_cases, data, args.preset)
    report(configs, times, args.iterations, args.eval_cases)


if __name__ == "__main__":
    main()
