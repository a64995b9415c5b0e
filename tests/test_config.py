"""The config tree: presets as data, overrides by path, what the method decides, the generated CLI."""

import json
import subprocess
import sys

import pytest

from camlkit.caml import CAMLConfig
from camlkit.cli import build_parser
from camlkit.cli.train import config_from_args
from camlkit.config import (
    METHOD_SWITCHES,
    PRESETS,
    TrainConfig,
    config_fields,
    default_run_dir,
    from_dict,
    get_field,
    make_config,
    to_dict,
)
from camlkit.errors import CamlkitError
from camlkit.step import StepConfig


def test_the_tree_nests_the_network_and_the_step_configs():
    cfg = TrainConfig()
    assert isinstance(cfg.model, CAMLConfig) and isinstance(cfg.step, StepConfig)
    paths = [path for path, _, _ in config_fields(cfg)]
    assert "lr" in paths and "model.proj_dim" in paths and "step.beta_o" in paths
    assert len(paths) == len(set(paths))
    assert not {"proj_dim", "beta_o", "n_filters"} & set(paths)  # nothing copied to the top


def test_overrides_by_path_and_clear_errors():
    cfg = make_config("quick", lr=0.1, **{"step.beta_o": 0.1, "model.proj_dim": 64})
    assert (cfg.lr, cfg.step.beta_o, cfg.model.proj_dim) == (0.1, 0.1, 64)
    assert PRESETS["quick"].step.beta_o == 0.05 and PRESETS["quick"].model.proj_dim == 32  # untouched
    with pytest.raises(CamlkitError, match="unknown config field 'beta_o' \\(it is step.beta_o\\)"):
        make_config("quick", beta_o=0.1)
    with pytest.raises(CamlkitError, match="unknown preset 'fast'"):
        make_config("fast")
    with pytest.raises(CamlkitError, match="unknown method 'vnet'"):
        make_config("quick", method="vnet")


@pytest.mark.parametrize("path", METHOD_SWITCHES)
def test_the_method_switches_are_not_overrides(path):
    with pytest.raises(CamlkitError, match=f"{path} is decided by the method"):
        make_config("quick", **{path: False})


def test_a_hand_built_config_cannot_contradict_its_method():
    built = TrainConfig(method="mcnet", labeled=8, model=CAMLConfig(use_cma=True),
                        step=StepConfig(use_occ=True, ramp_length=None, warmup=5))
    cfg = built.resolved()
    assert (cfg.model.use_cma, cfg.step.use_occ, cfg.step.use_cps) == (False, False, True)
    assert cfg.step.ramp_length == 20 and cfg.step.warmup == 5  # R by labeled count (8 -> 20)
    supervised = TrainConfig(method="supervised", step=StepConfig(warmup=5)).resolved()
    assert supervised.step.supervised_only and supervised.step.warmup == 0
    assert make_config("quick").step.ramp_length == 4  # a preset's explicit R is kept


def test_nested_fields_are_not_read_or_written_at_the_top():
    cfg = make_config("quick")
    with pytest.raises(AttributeError, match="no field 'n_filters': read cfg.model.n_filters"):
        cfg.n_filters  # noqa: B018  (the read itself is the test)
    with pytest.raises(AttributeError, match="no field 'beta_o': set cfg.step.beta_o"):
        cfg.beta_o = 0.1
    with pytest.raises(AttributeError, match="no field 'lr_shedule'"):
        cfg.lr_shedule = "cosine"
    cfg.lr = 0.2
    assert cfg.lr == 0.2


def test_config_dict_round_trip_and_default_run_folder():
    cfg = make_config("smoke", method="mcnet", labeled=8, seed=1, **{"step.beta_o": 0.2})
    values = to_dict(cfg)
    assert values["step.beta_o"] == 0.2 and values["patch_size"] == [32, 32, 16]
    assert from_dict(values) == cfg
    assert str(default_run_dir(cfg)) == "runs/smoke-mcnet-8L-seed1"
    with pytest.raises(CamlkitError, match="unknown config field 'step.nope'"):
        from_dict({**values, "step.nope": 1})


def _other_value(path, value):
    """A CLI spelling of a value different from ``value`` and the parsed value it gives."""
    special = {"method": ("mcnet+cma", "mcnet+cma"), "optimizer": ("adam", "adam"),
               "lr_schedule": ("constant", "constant"), "device": ("cpu", "cpu"),
               "step.similarity": ("cosine", "cosine"), "patch_size": ("64x64x48", (64, 64, 48)),
               "eval_stride": ("9,9,3", (9, 9, 3)), "eval_cases": ("3", 3), "labeled": ("8", 8),
               "crop_rule": ("uniform", "uniform"), "step.bank_fa_rows": ("per_voxel", "per_voxel"),
               "step.heads_on": ("picked", "picked"), "step.occ_log": ("log_softmax", "log_softmax"),
               "eval_split": ("val", "val")}
    if path in special:
        return special[path]
    if isinstance(value, bool):
        return None, not value
    if isinstance(value, int):
        return str(value + 3), value + 3
    if isinstance(value, float):
        return str(value * 0.5 + 0.125), value * 0.5 + 0.125
    if isinstance(value, str):  # parsed as given; checked where it is used
        return value + "x", value + "x"
    raise AssertionError(f"{path}: no test value for {value!r}")


def test_every_field_of_the_tree_is_set_from_the_command_line(tmp_path):
    quick = make_config("quick")
    argv, expected = ["train", "--preset", "quick"], {}
    for path, _, _ in config_fields(quick):
        if path in METHOD_SWITCHES:
            continue
        if path in ("preset", "data", "out", "progress"):  # the hand-written flags
            continue
        text, value = _other_value(path, get_field(quick, path))
        flag = "--" + (path if "." in path else path.replace("_", "-"))
        if text is None:  # a boolean: --flag / --no-flag
            flag = flag if value else flag.replace("--", "--no-", 1)
            argv.append(flag)
        else:
            argv += [flag, text]
        expected[path] = value
    argv += ["--preset", "smoke", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--quiet"]
    expected.update(preset="smoke", data=str(tmp_path), out=str(tmp_path / "r"), progress=False)
    cfg = config_from_args(build_parser().parse_args(argv))
    for path, value in expected.items():
        assert get_field(cfg, path) == value, path
    assert len(expected) + len(METHOD_SWITCHES) == len(list(config_fields(cfg)))


def test_train_config_reads_a_runs_config_json_and_flags_override_it(tmp_path):
    cfg = make_config("smoke", method="mcnet", labeled=4, seed=9, lr=0.02, data=str(tmp_path),
                      **{"model.n_filters": 4})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(to_dict(cfg)))
    parse = build_parser().parse_args
    # a preset typed beside --config does not replace what the file says
    read = config_from_args(parse(["train", "--config", str(path), "--preset", "paper"]))
    assert read == cfg
    changed = config_from_args(parse(["train", "--config", str(path), "--iterations", "7",
                                      "--step.beta_o", "0.2", "--out", str(tmp_path / "r")]))
    assert (changed.iterations, changed.step.beta_o, changed.out) == (7, 0.2, str(tmp_path / "r"))
    assert changed.lr == 0.02 and changed.method == "mcnet" and changed.model.n_filters == 4
    path.write_text('{"lr": 0.1, "no_such_field": 1}')
    with pytest.raises(CamlkitError, match=r"^--config .*config.json: not a camlkit config.json .*no_such_field"):
        config_from_args(parse(["train", "--config", str(path)]))


def test_the_method_switch_flags_do_not_exist():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--step.use_occ"])


def test_train_help_describes_shows_an_example_and_every_default():
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "train", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    text = out.stdout
    description = text.split("\n\n")[1]
    assert description.startswith("Train CAML") and "example:\n  camlkit train --preset quick" in text
    assert "(default: quick)" in text and "--data DATA" in text and "$CAMLKIT_DATA" in text
    assert "--step.beta_o BETA_O" in text and "--model.proj_dim PROJ_DIM" in text
    parser = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in parser._actions:
        assert action.help, action.option_strings  # every flag says what it does


# ----------------------------------------------------------------------------- bounds

def _outside(bound):
    """Values just outside ``bound`` (camlkit.config.Bound); a fraction for a whole-number field,
    NaN and infinity for a real-valued one."""
    step = 1 if bound.whole else 0.5
    values = []
    if bound.low is not None:
        values.append(bound.low if bound.low_open else bound.low - step)
    if bound.high is not None:
        values.append(bound.high if bound.high_open else bound.high + step)
    return values + ([bound.low + 1.5] if bound.whole else [float("nan"), float("inf")])


def _is_numeric(annotation):
    kinds = getattr(annotation, "__args__", (annotation,))
    return any(k in (int, float, tuple) for k in kinds) and annotation is not bool


def test_every_numeric_field_is_bounded_and_a_value_outside_stops_before_any_work(tmp_path, la_dir):
    from camlkit.config import BOUNDS, check_bounds, config_fields, flag_name, get_field, with_fields
    from camlkit.train import train

    good = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), progress=False)
    numeric = [path for path, f, _ in config_fields(good) if _is_numeric(f.type)]
    assert set(numeric) == set(BOUNDS)  # the table names every numeric field, and nothing else
    check_bounds(good)
    for preset in ("paper", "quick", "mini", "smoke"):  # every preset lies within the bounds
        check_bounds(make_config(preset))
    tried = 0
    for path in numeric:
        value = get_field(good, path)
        for bad in _outside(BOUNDS[path]):
            wrong = (bad, *value[1:]) if isinstance(value, tuple) else bad
            cfg = with_fields(good, {path: wrong})
            with pytest.raises(CamlkitError) as err:
                train(cfg)
            assert str(err.value).startswith(f"{flag_name(path)} "), (path, bad, str(err.value))
            assert "\n" not in str(err.value)
            tried += 1
    assert tried >= 2 * len(numeric) and not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("argv, message", [
    (["--step.occ_temperature", "-1"], "--step.occ_temperature -1.0: expected a finite number > 0"),
    (["--step.occ_temperature", "0"], "--step.occ_temperature 0.0: expected a finite number > 0"),
    (["--step.j", "0"], "--step.j 0: expected a whole number >= 1"),
    (["--step.top_i", "-5"], "--step.top_i -5: expected a whole number >= 1"),
    (["--lr", "nan"], "--lr nan: expected a finite number > 0"),
])
def test_camlkit_train_refuses_a_value_out_of_bounds_in_one_line(tmp_path, la_dir, capsys, argv, message):
    from camlkit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--data", str(la_dir), "--out", str(run), *argv]) == 2
    assert capsys.readouterr().err == f"camlkit train: error: {message}\n"
    assert not run.exists()
