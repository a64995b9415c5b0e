"""``camlkit train``: the command line of camlkit.train, generated from the config tree.

Every field of :class:`camlkit.config.TrainConfig` is a flag (camlkit.cli.add_config_arguments):
``--lr 0.05`` for a field of the run, ``--model.proj_dim 64`` and ``--step.beta_o 0.1`` for the
network's and the step's. A flag overrides the preset; the rest comes from ``--preset``.
"""

import argparse
import json
import os
import shlex
from pathlib import Path

from camlkit.cli import HelpFormatter, add_config_arguments, build_parser
from camlkit.config import (
    METHOD_SWITCHES,
    METHODS,
    PRESETS,
    TrainConfig,
    config_fields,
    from_dict,
    get_field,
    make_config,
    with_fields,
)
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import read_camlkit_checkpoint
from camlkit.train import train

DESCRIPTION = """\
Train CAML or one of its ablations on the LA cases of --data, then evaluate the model of the
final iteration on test.list (paper Table 1's protocol). A preset gives every value (paper: the
released configuration, a GPU day; quick: about 14 minutes on a 2-core CPU, from 12 min 47 s
measured on 2026-11-26 plus about 10 % for the release's OCC heads; mini: the quick sizes at 4
labeled, 1,000 iterations; smoke: seconds); any flag below overrides one. The run folder (--out)
gets config.json, log.csv, checkpoints/last.pth, model_final.pth, cases.csv, summary.md and
curves.png; a stopped run continues, bit-identical on CPU, with the same command and --resume.

example:
  camlkit train --preset quick --method caml --labeled 16 --seed 3407 --data data/LA --out runs/q16
  camlkit train --preset quick --step.beta_o 0.1 --model.proj_dim 64   # the paper's values
"""

CHOICES = {"method": METHODS, "optimizer": ("sgd", "adam"), "lr_schedule": ("constant", "cosine"),
           "crop_rule": ("release", "uniform"), "step.similarity": ("dot", "cosine"),
           "step.bank_fa_rows": ("scrambled", "per_voxel"), "step.heads_on": ("agreeing", "picked"),
           "step.occ_log": ("eps", "log_softmax"), "eval_split": ("test", "val")}
NOT_FLAGS = ("preset", "data", "out", "progress") + METHOD_SWITCHES  # written by hand below


def defaults_text(path):
    """The default a preset gives: one value if the presets agree, else each preset's."""
    values = {name: get_field(cfg, path) for name, cfg in PRESETS.items()}
    if len(set(map(repr, values.values()))) == 1:
        return f"default: {_show(values['paper'])}"
    return "; ".join(f"{name}: {_show(v)}" for name, v in values.items())


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_cli(subparsers):
    p = subparsers.add_parser("train", help="train CAML or an ablation (presets: paper, quick, mini, smoke)",
                              description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS),
                   help="the values every other flag overrides")
    p.add_argument("--config", default=None, metavar="CONFIG_JSON",
                   help="a run's config.json: train exactly that config (instead of --preset; flags "
                        "typed beside it override its values). A run launched from Python "
                        "(camlkit.lab.launch) is started this way")
    p.add_argument("--data", default=None,
                   help="LA folder holding train.list, test.list and the case files (default: "
                        "$CAMLKIT_DATA when set, else data/LA of the working folder or of its parent; "
                        "camlkit.data.folder.find_data_dir)")
    p.add_argument("--out", default=None,
                   help="run folder (default: runs/<preset>-<method>-<labeled>L-seed<seed>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="LAST_PTH",
                   help="continue the run in --out from its checkpoints/last.pth (or from the "
                        "given last.pth, whose run folder is then the --out)")
    p.add_argument("--overwrite", action="store_true", help="replace the run --out holds")
    p.add_argument("--no-eval", dest="evaluate", action="store_false",
                   help="train only: no final evaluation")
    p.add_argument("--quiet", "--no-progress", dest="progress", action="store_false",
                   default=None, help="no progress bar or printed summary")
    paths = add_config_arguments(p, PRESETS["quick"], defaults_text, skip=NOT_FLAGS, choices=CHOICES)
    p.set_defaults(func=train_command, config_paths=paths)


def config_from_args(args):
    """The preset of ``--preset`` (or the config.json of ``--config``) with every flag the user
    typed (make_config resolves it)."""
    overrides = {path: getattr(args, path) for path in args.config_paths if hasattr(args, path)}
    overrides.update(data=args.data, out=args.out, progress=args.progress)
    if args.resume not in (False, True):
        overrides["out"] = resume_folder(Path(args.resume), args.out)
    if getattr(args, "config", None) is not None:
        return with_fields(read_config(args.config), {k: v for k, v in overrides.items() if v is not None}).resolved()
    return make_config(args.preset, **overrides)


def read_config(path) -> TrainConfig:
    """The TrainConfig a run's config.json holds; one line for a file that is not one."""
    try:
        return from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError, AttributeError, CamlkitError) as err:
        raise CamlkitError(f"--config {path}: not a camlkit config.json ({err})") from None


def train_command(args):
    cfg = config_from_args(args)
    try:
        run_dir = train(cfg, resume=bool(args.resume), evaluate=args.evaluate, overwrite=args.overwrite)
    except KeyboardInterrupt as err:
        again = [a for a in args.argv if a not in ("--resume", str(args.resume))] + ["--resume"]
        said = f"{err}; " if str(err) else ""
        raise KeyboardInterrupt(f"{said}to continue: camlkit {shlex.join(again)}") from None
    if cfg.progress and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run_dir}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def resume_folder(last: Path, out):
    """The run folder of a ``--resume LAST_PTH``; an inference checkpoint is one clear line."""
    read_camlkit_checkpoint(last)  # one line for anything but a training checkpoint
    folder = last.parent.parent
    if last.name != "last.pth" or last.parent.name != "checkpoints":
        raise CamlkitError(f"--resume {last}: expected a run's checkpoints/last.pth")
    if out is not None and Path(out).resolve() != folder.resolve():
        raise CamlkitError(f"--resume {last} belongs to {folder}, not to --out {out}")
    return str(folder)


# ----------------------------------------------------------------------------- config -> command

def train_parser():
    """The ``camlkit train`` parser, as the console script builds it."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def _flag_for(action, value):
    """The command-line words that set ``action.dest`` to ``value`` ([] if none can)."""
    if isinstance(action, argparse.BooleanOptionalAction):  # --amp / --no-amp
        return [action.option_strings[0] if value else action.option_strings[-1]]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return [max(action.option_strings, key=len)] if value == action.const else []
    if isinstance(value, (tuple, list)):
        value = ",".join(str(v) for v in value)
    return [max(action.option_strings, key=len), str(value)]


def config_to_args(cfg) -> list:
    """``camlkit train`` options that rebuild ``cfg`` (the inverse of :func:`config_from_args`):
    ``--preset`` and a flag for every field of the config tree that differs from the preset
    (``--lr 0.1``, ``--step.similarity cosine``, ``--model.n_filters 8``); ``--data`` always,
    ``--out`` never. What ``method`` decides (camlkit.config.METHOD_SWITCHES, the ramp by labeled
    count) is compared after resolving the preset with the same method and labeled count, so it
    is never a flag."""
    preset = PRESETS[cfg.preset]
    resolved = make_config(cfg.preset, method=cfg.method, labeled=cfg.labeled)
    actions = {a.dest: a for a in train_parser()._actions if a.option_strings}
    args = ["--preset", cfg.preset]
    for path, _, _ in config_fields(cfg):
        value = get_field(cfg, path)
        if path == "data":  # always: the command line's default comes from $CAMLKIT_DATA
            value = str(Path(value).resolve())
        elif path in ("preset", "out") or path in METHOD_SWITCHES:
            continue
        elif path in ("method", "labeled"):
            if value == get_field(preset, path):
                continue
        elif value == get_field(resolved, path):
            continue
        words = _flag_for(actions[path], value) if path in actions else []
        if not words:
            raise CamlkitError(f"config field {path}={value!r} differs from the "
                               f"{cfg.preset!r} preset but `camlkit train` has no option for it")
        args += words
    return args
