"""The ``camlkit`` command line: a thin layer over the library.

Each sub-command lives beside the code it drives and registers itself through an
``add_cli(subparsers)`` function that sets ``func`` on its parser. Errors that come from bad
input (:class:`camlkit.errors.CamlkitError`, missing files) are printed as one line and give
exit status 2.
"""

import argparse
import importlib
import sys

from camlkit.errors import CamlkitError

# module that defines add_cli(), in the order they appear in --help
COMMAND_MODULES = ("camlkit.train", "camlkit.evaluate", "camlkit.inference", "camlkit.report",
                   "camlkit.download", "camlkit.preprocess")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="camlkit", description="CAML (MICCAI 2023) on the Left Atrium dataset."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (CamlkitError, FileNotFoundError, NotADirectoryError) as err:
        print(f"camlkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
