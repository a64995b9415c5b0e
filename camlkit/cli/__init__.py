"""The ``camlkit`` command line: a thin layer over the library.

Each sub-command lives beside the code it drives and registers itself through an
``add_cli(subparsers)`` function that sets ``func`` on its parser. Errors that come from bad
input (:class:`camlkit.errors.CamlkitError`, missing files) are printed as one line and give
exit status 2, and so does a limit of the machine reached (memory, ``ulimit -f``;
camlkit.limits) where no closer code said more; Ctrl-C prints one line (the command may say how
to continue) and gives 130.

:func:`add_config_arguments` turns a config dataclass tree into flags, one per field, with the
field's comment as help text: ``--lr 0.05`` for a top-level field, ``--step.beta_o 0.1`` for a
field of a nested config (minGPT's ``--trainer.lr`` idea).

:func:`main` is an entry point: it applies the CPU-sharing policy (camlkit.runtime.threads)
before any command loads torch, so this module imports nothing that does (``import camlkit``
itself changes nothing). ``camlkit download`` is camlkit.cli.download's: the LA data or the
authors' networks.
"""

import argparse
import importlib
import inspect
import re
import sys
import types

from camlkit.errors import CamlkitError
from camlkit.limits import limit_reached
from camlkit.runtime.threads import share_cpu

# module that defines add_cli(), in the order they appear in --help
COMMAND_MODULES = ("camlkit.cli.train", "camlkit.evaluation.evaluate", "camlkit.evaluation.inference",
                   "camlkit.evaluation.report",
                   "camlkit.cli.download", "camlkit.data.preprocess")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each flag's help; descriptions keep their line breaks (examples)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:  # on/off flags and "not given" say it
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="camlkit", description="CAML (MICCAI 2023) on the Left Atrium dataset."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv=None):
    share_cpu()  # before the commands load torch: how OpenMP threads wait (camlkit.runtime.threads)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args) or 0
    except (CamlkitError, FileNotFoundError, NotADirectoryError) as err:
        print(f"camlkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        said = f": {err}" if str(err) else ""
        print(f"camlkit {args.command}: interrupted{said}", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError, OSError) as err:
        reached = limit_reached(err)
        if reached is None:
            raise
        print(f"camlkit {args.command}: error: {reached}{_file_of(err)}; {_kept(args.command)}",
              file=sys.stderr)
        return 2


def _file_of(err):
    return f" writing {err.filename}" if getattr(err, "filename", None) else ""


def _kept(command):
    """What a command stopped by a limit of the machine leaves behind."""
    kept = "no result or checkpoint is half-written (each is written aside, then renamed)"
    if command == "train":
        kept += ("; the run keeps its last checkpoint (checkpoints/last.pth), if one was written, "
                 "from which the same command with --resume continues")
    return kept


def run_script(command, argv=None):
    """What a ``data_scripts/`` wrapper runs: ``camlkit COMMAND ARGS`` (the same messages, exits)."""
    return main([command, *(sys.argv[1:] if argv is None else argv)])


# ----------------------------------------------------------------------------- config -> flags

def field_comments(cls) -> dict:
    """{field name: its trailing ``# comment``} from a dataclass's source."""
    found = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s{4}(\w+)\s*:[^#]*#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def add_config_arguments(parser, example, defaults_text, skip=(), choices=None):
    """One flag per leaf field of the dataclass tree ``example``; returns the paths added.

    Flags default to argparse.SUPPRESS, so only what the user typed reaches the namespace
    (``getattr(args, path)``). ``defaults_text(path)`` says the default in the help.
    """
    choices = choices or {}
    paths, groups = [], {}
    # the one camlkit import inside a function here: camlkit.config loads torch, and main() sets
    # the CPU-sharing policy first (camlkit.runtime.threads); the commands' modules load after it
    from camlkit.config import config_fields, flag_name

    for path, f, owner in config_fields(example):
        if path in skip:
            continue
        head = path.rpartition(".")[0]
        if head not in groups:
            title = f"{head} ({owner.__module__}.{owner.__name__})" if head else "run"
            groups[head] = parser.add_argument_group(title)
        comment = field_comments(owner).get(f.name, f"see {owner.__module__}.{owner.__name__}")
        help_text = f"{comment} ({defaults_text(path)})".replace("%", "%%")
        kwargs = dict(dest=path, default=argparse.SUPPRESS, help=help_text)
        if f.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=_parser_for(f.type), metavar=path.rpartition(".")[2].upper())
            if path in choices:
                kwargs.update(choices=choices[path], metavar=None)
        groups[head].add_argument(flag_name(path), **kwargs)
        paths.append(path)
    return paths


def _parser_for(annotation):
    """A str -> value function for a field's type; ``none`` gives None for every type."""
    kinds = [t for t in getattr(annotation, "__args__", (annotation,)) if t is not type(None)]
    if isinstance(annotation, types.UnionType) and len(kinds) == 1:
        annotation = kinds[0]
    base = {tuple: parse_tuple, int: int, float: float}.get(annotation, str)

    def parse(text):
        return None if text.lower() == "none" else base(text)

    parse.__name__ = getattr(annotation, "__name__", "value")  # argparse names it in errors
    return parse


def parse_tuple(text):
    """``48,48,32`` or ``48x48x32`` -> (48, 48, 32)."""
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected whole numbers like 48,48,32") from None


if __name__ == "__main__":
    sys.exit(main())
