"""Fetch the preprocessed LA release and verify every file against its SHA-256.

The public copy most LA papers use lives in the GitHub repository ``yulequan/UA-MT`` (branch
master, folder ``data/``): 100 cases ``2018LA_Seg_Training Set/<CASE>/mri_norm2.h5`` plus
``train.list`` (80 cases) and ``test.list`` (20), 233 MB (the paper, Sec. 3 "Dataset": 80 scans
for training and 20 for testing, following UA-MT).
``resources/la_sha256sums.txt`` holds the checksum of each of those 102 files.

Every file is written under a temporary name in its destination folder (camlkit.files) and
renamed only once its checksum matches, so an interrupted or corrupted transfer never leaves a
file under the final name; temporary files of killed runs are removed on the next start; files
already present and verified are skipped, so a rerun resumes. A connection error is retried
(``--retries``, with a doubling delay); a file whose checksum does not match is downloaded once
more before the command fails, since a transfer can be damaged on its way.

With ``--source DIR`` the files come from a local folder of the same layout (e.g. the shared
60-case copy): each ``.h5`` is verified; files absent from the source are reported as skipped;
a list file that differs from the release's (the shared ``train.list`` names only the 40
training cases present) is copied as it is, and reported so.

Every entry of a checksum list must be a relative path inside the destination: an absolute
path or one that climbs out with ``..`` is refused, with its line, before anything is fetched.

The transfer of one file (temporary name, retries, verification) is camlkit.data.fetch's, shared
with ``camlkit download --weights 16`` (camlkit.runtime.weights: the authors' trained networks, verified
against their git blob ids, a cut transfer resumed where it stopped).

Destination: ``--dest``, else ``$CAMLKIT_DATA``, else ``data/LA`` in the repository.
Command line: ``camlkit download`` (camlkit.cli.download; or ``python data_scripts/download_la.py``).
"""

import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from camlkit.data.fetch import (
    DEADLINE,
    MIN_RATE,
    already_there,
    copy_verified,
    fetch,
    file_url,
    prepare_folder,
    sha256_of,
)
from camlkit.data.fetch import check_base_url as _check_url
from camlkit.errors import CamlkitError
from camlkit.files import atomic_path, sigterm_as_exit

RELEASE_URL = "https://raw.githubusercontent.com/yulequan/UA-MT/master/data/"


def default_checksums():
    return resources.files("camlkit") / "resources" / "la_sha256sums.txt"


def read_checksums(path=None):
    """{relative path: sha256} from a ``sha256sum``-style file (default: the packaged LA list)."""
    source = Path(path) if path is not None else default_checksums()
    entries = {}
    for number, line in enumerate(source.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise CamlkitError(f"{source}, line {number}: expected '<sha256>  <relative path>'")
        name = name.strip().lstrip("*")
        check_relative(name, f"{source}, line {number}")
        entries[name] = digest.lower()
    return entries


def check_relative(relpath, where):
    """A checksum-list entry names a file inside the destination folder: a relative path without
    ``..`` (``../../x`` or ``/etc/x`` would be written outside ``--dest``). One line otherwise."""
    parts = PurePosixPath(relpath).parts
    if not parts or PurePosixPath(relpath).is_absolute() or ".." in parts or "\\" in relpath:
        raise CamlkitError(f"{where}: {relpath!r} lies outside the destination folder; entries must be "
                           f"relative paths inside it, like '2018LA_Seg_Training Set/<CASE>/mri_norm2.h5'")
    return relpath


def target_path(dest, relpath):
    """``dest / relpath`` for an entry checked by :func:`check_relative`."""
    return Path(dest) / check_relative(relpath, f"--dest {dest}")


def select(entries, only):
    """Keep the entries whose case folder or file name is in ``only`` (None keeps all)."""
    if not only:
        return dict(entries)
    wanted = set(only)
    chosen = {k: v for k, v in entries.items() if k in wanted or Path(k).parent.name in wanted}
    unknown = wanted - {k for k in chosen} - {Path(k).parent.name for k in chosen}
    if unknown:
        raise CamlkitError(f"--only {sorted(unknown)[0]}: not a case or file of the checksum list")
    return chosen


def default_dest():
    """``$CAMLKIT_DATA`` if set, else ``data/LA`` at the repository root."""
    env = os.environ.get("CAMLKIT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "LA"


@dataclass
class Report:
    """What happened to each file: verified (new), present (already verified), skipped, unverified."""
    verified: list = field(default_factory=list)
    present: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    unverified: list = field(default_factory=list)

    def summary(self):
        return (f"{len(self.verified)} fetched and verified, {len(self.present)} already present, "
                f"{len(self.skipped)} not in the source, {len(self.unverified)} list files copied as they are")


def check_base_url(base_url):
    """An http(s) or file URL with a place in it; one line for anything else."""
    return _check_url(base_url, RELEASE_URL)


def download_release(dest, entries, base_url=RELEASE_URL, retries=3, backoff=1.0, progress=True,
                     timeout=60, deadline=DEADLINE, min_rate=MIN_RATE):
    """Download the ``entries`` ({relative path: sha256}) from ``base_url`` into ``dest``."""
    from tqdm.auto import tqdm

    dest, report = Path(dest), Report()
    for relpath in entries:  # every entry lies inside dest, checked before anything is fetched
        target_path(dest, relpath)
    for relpath, digest in tqdm(entries.items(), desc="LA download", unit="file", disable=not progress):
        target = target_path(dest, relpath)
        if already_there(target, digest):
            report.present.append(relpath)
            continue
        fetch(file_url(check_base_url(base_url), relpath), target, digest, retries=retries,
              backoff=backoff, timeout=timeout, deadline=deadline, min_rate=min_rate)
        report.verified.append(relpath)
    return report


def copy_release(source, dest, entries, progress=True):
    """Copy the ``entries`` from a local folder of the release layout, verifying each ``.h5``."""
    from tqdm.auto import tqdm

    source, dest, report = Path(source), Path(dest), Report()
    if not source.is_dir():
        raise CamlkitError(f"--source {source}: folder not found")
    for relpath in entries:  # every entry lies inside dest, checked before anything is copied
        target_path(dest, relpath)
    for relpath, digest in tqdm(entries.items(), desc="LA copy", unit="file", disable=not progress):
        origin, target = source / relpath, target_path(dest, relpath)
        if not origin.is_file():
            report.skipped.append(relpath)
            continue
        if relpath.endswith(".list") and sha256_of(origin) != digest:
            # the source's own split (e.g. the 40-case train.list of the shared copy): keep it as is
            prepare_folder(target)
            with atomic_path(target) as tmp:
                shutil.copyfile(origin, tmp)
            report.unverified.append(relpath)
            continue
        if already_there(target, digest):
            report.present.append(relpath)
            continue
        copy_verified(origin, target, digest)
        report.verified.append(relpath)
    return report


# ----------------------------------------------------------------------------- command line

def add_arguments(parser):
    """The options of ``camlkit download`` and ``data_scripts/download_la.py``."""
    parser.add_argument("--weights", choices=("4", "8", "16", "all"), default=None,
                        help="fetch the authors' trained CAML network for 4, 8 or 16 labeled scans (or all "
                             "three) instead of the LA data, verified against its git blob id "
                             "(camlkit.runtime.weights)")
    parser.add_argument("--dest", default=None,
                        help="destination folder (default: $CAMLKIT_DATA, else data/LA in the repository; "
                             "with --weights: torch.hub.get_dir()/checkpoints/camlkit, which $TORCH_HOME moves)")
    parser.add_argument("--base-url", default=None,
                        help=f"where the files live (default: {RELEASE_URL}; with --weights: the authors' "
                             f"repository at the pinned commit)")
    parser.add_argument("--source", default=None, help="copy from this local folder of the same layout instead")
    parser.add_argument("--retries", type=int, default=3,
                        help="retries per file on connection errors (default: %(default)s)")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="first retry delay in seconds, doubled each time (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the server before a try counts as failed (default: %(default)s)")
    parser.add_argument("--deadline", type=float, default=DEADLINE, metavar="S",
                        help="seconds one try of one file may take in all, however slowly the bytes come "
                             "(default: %(default)s)")
    parser.add_argument("--min-rate", type=float, default=MIN_RATE, metavar="BYTES_PER_S",
                        help="a try slower than this over any --timeout seconds counts as failed; 0: no "
                             "minimum (default: %(default)s)")
    parser.add_argument("--checksums", default=None, help="checksum file to use (default: the packaged LA list)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="only these cases (folder names) or files (e.g. test.list) (default: all 102 files)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


DESCRIPTION = ("Download (or copy) the preprocessed LA release and verify each file's SHA-256; with "
               "--weights, the authors' trained networks, verified against their git blob ids.")


def check_transfer_options(args):
    """--retries, --timeout, --backoff: one line for a value that cannot work."""
    if args.retries < 0:
        raise CamlkitError(f"--retries {args.retries}: expected 0 or more")
    if not args.timeout > 0:
        raise CamlkitError(f"--timeout {args.timeout}: expected a positive number of seconds")
    if args.backoff < 0:
        raise CamlkitError(f"--backoff {args.backoff}: expected 0 or more seconds")
    if not args.deadline > 0:
        raise CamlkitError(f"--deadline {args.deadline}: expected a positive number of seconds")
    if not args.min_rate >= 0:
        raise CamlkitError(f"--min-rate {args.min_rate}: expected 0 or more bytes per second")


def check_dest(dest):
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise CamlkitError(f"--dest {dest}: is an existing file, expected a folder")
    return dest


def download_command(args):
    """Run a download from parsed arguments; raises CamlkitError for any failure."""
    check_transfer_options(args)
    base_url = args.base_url or RELEASE_URL
    if not args.source:
        check_base_url(base_url)
    entries = select(read_checksums(args.checksums), args.only)
    if not entries:
        raise CamlkitError(f"--checksums {args.checksums}: no entries, nothing to fetch (expected lines "
                           f"'<sha256>  <relative path>')")
    dest = check_dest(args.dest if args.dest else default_dest())
    try:
        with sigterm_as_exit():
            if args.source:
                report = copy_release(args.source, dest, entries, progress=not args.quiet)
            else:
                report = download_release(dest, entries, base_url, args.retries, args.backoff,
                                          progress=not args.quiet, timeout=args.timeout,
                                          deadline=args.deadline, min_rate=args.min_rate)
    except OSError as err:  # a full disk, a folder without write permission
        raise CamlkitError(f"{dest}: {err}".splitlines()[0]) from None
    print(f"{dest}: {report.summary()}")
    for relpath in report.unverified:
        print(f"  copied as it is (differs from the release): {relpath}")
    if report.skipped:
        print(f"  not in the source ({len(report.skipped)} files), e.g. {report.skipped[0]}")
    return 0
