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

Destination: ``--dest``, else ``$CAMLKIT_DATA``, else ``data/LA`` in the repository.
Command line: ``camlkit download`` (or ``python data_scripts/download_la.py``).
"""

import hashlib
import http.client
import os
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.files import atomic_path, clean_temps, sigterm_as_exit

RELEASE_URL = "https://raw.githubusercontent.com/yulequan/UA-MT/master/data/"
CHUNK = 1 << 16


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
        entries[name.strip().lstrip("*")] = digest.lower()
    return entries


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


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_url(base_url, relpath):
    return base_url.rstrip("/") + "/" + urllib.parse.quote(relpath)


class ShortRead(OSError):
    """The connection closed before Content-Length bytes arrived."""


def _stream(url, handle, timeout):
    """Copy one HTTP response body into ``handle``; raise ShortRead if it is cut short."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        expected = response.headers.get("Content-Length")
        received = 0
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            handle.write(block)
            received += len(block)
    if expected is not None and received != int(expected):
        raise ShortRead(f"connection closed after {received} of {expected} bytes")


class ChecksumMismatch(CamlkitError):
    """A file arrived whole but its SHA-256 is not the release's."""


def _verify(tmp, digest, origin):
    """Raise ChecksumMismatch unless the file ``tmp`` has the SHA-256 ``digest``."""
    actual = sha256_of(tmp)
    if actual != digest:
        raise ChecksumMismatch(f"{origin}: checksum mismatch (sha256 {actual[:12]}..., expected {digest[:12]}...)")


def _temp_folder(target):
    """Create the target's folder and remove what killed downloads left there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_temps(target.parent)


def attempts(n):
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def fetch(url, target, digest, retries=3, backoff=1.0, timeout=60):
    """Download ``url`` to ``target`` through a temporary file, retrying connection errors
    ``retries`` times and a checksum mismatch once."""
    target = Path(target)
    _temp_folder(target)
    attempt, mismatches = 0, 0
    while True:
        try:
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as handle:
                    _stream(url, handle, timeout)
                _verify(tmp, digest, target)
            return
        except ChecksumMismatch as err:
            mismatches += 1
            if mismatches > 1:
                raise CamlkitError(f"{err}, again after downloading it a second time") from None
            continue  # a damaged transfer: download it once more, at once
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == retries:
                raise CamlkitError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if attempt == retries:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError):
                    reason = f"no answer within {timeout:g} s; a slow connection may need a larger --timeout"
                raise CamlkitError(f"{url}: download failed after {attempts(retries + 1)} ({reason})") from None
        time.sleep(backoff * 2**attempt)
        attempt += 1


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


def _already_there(target, digest):
    return target.is_file() and sha256_of(target) == digest


def check_base_url(base_url):
    """An http(s) or file URL with a place in it; one line for anything else."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise CamlkitError(f"--base-url {base_url}: expected an http:// or https:// URL, "
                           f"e.g. {RELEASE_URL}")
    return base_url


def download_release(dest, entries, base_url=RELEASE_URL, retries=3, backoff=1.0, progress=True,
                     timeout=60):
    """Download the ``entries`` ({relative path: sha256}) from ``base_url`` into ``dest``."""
    from tqdm.auto import tqdm

    dest, report = Path(dest), Report()
    for relpath, digest in tqdm(entries.items(), desc="LA download", unit="file", disable=not progress):
        target = dest / relpath
        if _already_there(target, digest):
            report.present.append(relpath)
            continue
        fetch(file_url(check_base_url(base_url), relpath), target, digest, retries=retries,
              backoff=backoff, timeout=timeout)
        report.verified.append(relpath)
    return report


def copy_release(source, dest, entries, progress=True):
    """Copy the ``entries`` from a local folder of the release layout, verifying each ``.h5``."""
    from tqdm.auto import tqdm

    source, dest, report = Path(source), Path(dest), Report()
    if not source.is_dir():
        raise CamlkitError(f"--source {source}: folder not found")
    for relpath, digest in tqdm(entries.items(), desc="LA copy", unit="file", disable=not progress):
        origin, target = source / relpath, dest / relpath
        if not origin.is_file():
            report.skipped.append(relpath)
            continue
        if relpath.endswith(".list") and sha256_of(origin) != digest:
            # the source's own split (e.g. the 40-case train.list of the shared copy): keep it as is
            _temp_folder(target)
            with atomic_path(target) as tmp:
                shutil.copyfile(origin, tmp)
            report.unverified.append(relpath)
            continue
        if _already_there(target, digest):
            report.present.append(relpath)
            continue
        _temp_folder(target)
        with atomic_path(target) as tmp:
            shutil.copyfile(origin, tmp)
            _verify(tmp, digest, origin)
        report.verified.append(relpath)
    return report


# ----------------------------------------------------------------------------- command line

def add_arguments(parser):
    """The options of ``camlkit download`` and ``data_scripts/download_la.py``."""
    parser.add_argument("--dest", default=None,
                        help="destination folder (default: $CAMLKIT_DATA, else data/LA in the repository)")
    parser.add_argument("--base-url", default=RELEASE_URL, help="where the release lives (default: %(default)s)")
    parser.add_argument("--source", default=None, help="copy from this local folder of the same layout instead")
    parser.add_argument("--retries", type=int, default=3,
                        help="retries per file on connection errors (default: %(default)s)")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="first retry delay in seconds, doubled each time (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the server before a try counts as failed (default: %(default)s)")
    parser.add_argument("--checksums", default=None, help="checksum file to use (default: the packaged LA list)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="only these cases (folder names) or files (e.g. test.list) (default: all 102 files)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


DESCRIPTION = "Download (or copy) the preprocessed LA release and verify each file's SHA-256."


def download_command(args):
    """Run a download from parsed arguments; raises CamlkitError for any failure."""
    if args.retries < 0:
        raise CamlkitError(f"--retries {args.retries}: expected 0 or more")
    if not args.timeout > 0:
        raise CamlkitError(f"--timeout {args.timeout}: expected a positive number of seconds")
    if args.backoff < 0:
        raise CamlkitError(f"--backoff {args.backoff}: expected 0 or more seconds")
    if not args.source:
        check_base_url(args.base_url)
    entries = select(read_checksums(args.checksums), args.only)
    dest = Path(args.dest) if args.dest else default_dest()
    if dest.exists() and not dest.is_dir():
        raise CamlkitError(f"--dest {dest}: is an existing file, expected a folder")
    try:
        with sigterm_as_exit():
            if args.source:
                report = copy_release(args.source, dest, entries, progress=not args.quiet)
            else:
                report = download_release(dest, entries, args.base_url, args.retries, args.backoff,
                                          progress=not args.quiet, timeout=args.timeout)
    except OSError as err:  # a full disk, a folder without write permission
        raise CamlkitError(f"{dest}: {err}".splitlines()[0]) from None
    print(f"{dest}: {report.summary()}")
    for relpath in report.unverified:
        print(f"  copied as it is (differs from the release): {relpath}")
    if report.skipped:
        print(f"  not in the source ({len(report.skipped)} files), e.g. {report.skipped[0]}")
    return 0


def add_cli(subparsers):
    parser = subparsers.add_parser("download", help="download the LA data and verify it",
                                   description=DESCRIPTION + " Files already present and verified "
                                   "are skipped, so a rerun resumes. Example: camlkit download --dest data/LA")
    add_arguments(parser)
    parser.set_defaults(func=download_command)


def main(argv=None):
    """``python data_scripts/download_la.py ARGS``: the same as ``camlkit download ARGS``."""
    from camlkit.cli import run_script

    return run_script("download", argv)


if __name__ == "__main__":
    sys.exit(main())
