"""``camlkit download``: the preprocessed LA release (camlkit.data.download) or, with
``--weights N``, the authors' trained networks (camlkit.runtime.weights). One command, two
sources: the choice is made here, above both."""

from camlkit.data.download import DESCRIPTION, add_arguments, check_transfer_options, download_command
from camlkit.runtime.weights import weights_command


def download_or_weights(args):
    """The LA data, or the authors' networks with ``--weights``; raises CamlkitError for any failure."""
    if args.weights:
        check_transfer_options(args)
        return weights_command(args)
    return download_command(args)


def add_cli(subparsers):
    parser = subparsers.add_parser("download", help="download the LA data (or the authors' networks) and verify it",
                                   description=DESCRIPTION + " Files already present and verified "
                                   "are skipped, so a rerun resumes. Examples: camlkit download --dest data/LA; "
                                   "camlkit download --weights 16")
    add_arguments(parser)
    parser.set_defaults(func=download_or_weights)
