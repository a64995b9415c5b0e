"""Fetching one file so that it arrives whole and verified, or not at all.

What every download of camlkit shares (the LA release, camlkit.data.download; the authors' trained
networks, camlkit.runtime.weights):

- a file is identified by a digest: the SHA-256 (the LA checksum list) or the git blob id
  (SHA-1 of ``b"blob <size>\\0"`` + the bytes, what ``git hash-object`` prints: how a git
  repository names a file's content, so the authors' commit pins the exact bytes);
- :func:`fetch` streams ``url`` into a file beside the target and renames it to the target only
  once its digest matches; a connection error or a cut transfer is retried with a doubling
  delay, a digest mismatch downloaded once more at once (a transfer can be damaged on its way),
  then one line names the file;
- ``resume=True`` (large files) keeps what arrived in ``.<name>.part`` and asks the server for
  the rest (HTTP Range) on the next try or the next run; a server that ignores Range sends the
  whole file again and the partial file is restarted cleanly;
- a transfer has a wall-clock ``deadline`` and a ``min_rate`` (bytes per second over each
  ``timeout`` seconds): a server that trickles bytes cannot hold it forever (``--timeout`` alone
  bounds each wait, not the whole);
- an error of a local file (the partial file is a link, the folder cannot be written) is the
  disk's, not the network's: one line naming the path and the OS error, never retried;
- :func:`copy_verified` does the same for a local copy.
"""

import errno
import fcntl
import hashlib
import http.client
import os
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.files import atomic_path, clean_temps, link_message

CHUNK = 1 << 16
DEADLINE = 1800.0  # seconds one try of one file may take, however the bytes come (--deadline)
MIN_RATE = 1024.0  # bytes per second a transfer must keep up over each --timeout (--min-rate)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def blob_id(path):
    """The file's git blob id: SHA-1 of ``b"blob <size>\\0"`` + its bytes (``git hash-object``)."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


# how a file is identified: the LA list uses SHA-256, the authors' repository git blob ids
HASHERS = {"sha256": sha256_of, "git blob": blob_id}


def file_url(base_url, relpath):
    return base_url.rstrip("/") + "/" + urllib.parse.quote(relpath)


class ShortRead(OSError):
    """The connection closed before Content-Length bytes arrived."""


class TooSlow(ShortRead):
    """The transfer went past its deadline, or fell below its minimum rate."""


class LocalFileError(CamlkitError):
    """A local file could not be written: the disk's error, not the network's (never retried)."""


# what a connection raises (all OSErrors too): never taken for a local file's error
NETWORK_ERRORS = (urllib.error.URLError, ShortRead, ConnectionError, TimeoutError, ssl.SSLError)


@contextmanager
def local(path):
    """Around local file operations of a download: an OSError there (not a connection's) is one
    line naming ``path``."""
    try:
        yield
    except NETWORK_ERRORS:
        raise
    except OSError as err:
        if err.errno == errno.ELOOP or Path(path).is_symlink():
            raise LocalFileError(link_message(path)) from None
        raise LocalFileError(f"{path}: {err.strerror or err} (a local file error, not the "
                             f"network's: nothing was retried)") from None


def _pace(started, window, received, deadline, min_rate, timeout):
    """Raise TooSlow past ``deadline`` seconds, or when the ``received`` bytes since ``window``
    (a monotonic time) came slower than ``min_rate`` over at least ``timeout`` seconds; returns
    the window to count from next."""
    now = time.monotonic()
    if deadline is not None and now - started > deadline:
        raise TooSlow(f"the transfer took longer than --deadline {deadline:g} s")
    if min_rate and now - window >= timeout:
        if received / (now - window) < min_rate:
            raise TooSlow(f"{received} bytes in {now - window:.0f} s, below --min-rate {min_rate:g} bytes/s")
        return now
    return window


def _stream(url, handle, where, pace, start=0, progress=None):
    """Copy one HTTP response body into ``handle`` (the file ``where``); raise ShortRead if it
    is cut short, TooSlow past the deadline or below the minimum rate.

    ``pace``: (timeout, deadline, min_rate), see :func:`fetch`. ``start`` > 0 asks for the bytes
    from there on (HTTP Range) and appends them to ``handle``, which holds the first ``start``
    bytes; a server that ignores Range answers with the whole file, and ``handle`` is emptied
    first so that it restarts cleanly. ``progress``: a label for a progress bar in bytes (None:
    no bar).
    """
    from tqdm.auto import tqdm

    timeout, deadline, min_rate = pace
    started = window = time.monotonic()
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if start and response.status != 206:  # Range ignored: the whole file comes
            with local(where):
                handle.truncate(0)
            start = 0
        elif start and not response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
            with local(where):
                handle.truncate(0)  # some other part came: the next try asks for the whole file
            raise ShortRead(f"asked for the bytes from {start} on, the server sent "
                            f"{response.headers.get('Content-Range')!r}")
        expected = response.headers.get("Content-Length")
        total = start + int(expected) if expected is not None else None
        received = in_window = 0
        with tqdm(total=total, initial=start, desc=progress, unit="B", unit_scale=True,
                  unit_divisor=1024, disable=progress is None) as bar:
            while True:
                block = response.read1(CHUNK)  # what has come (a trickle is seen as one)
                if not block:
                    break
                with local(where):
                    handle.write(block)
                received += len(block)
                in_window += len(block)
                bar.update(len(block))
                if _pace(started, window, in_window, deadline, min_rate, timeout) != window:
                    window, in_window = time.monotonic(), 0
    if expected is not None and received != int(expected):
        raise ShortRead(f"connection closed after {start + received} of {total} bytes")


class ChecksumMismatch(CamlkitError):
    """A file arrived whole but its SHA-256 (or git blob id) is not the expected one."""


def _verify(tmp, digest, origin, kind="sha256"):
    """Raise ChecksumMismatch unless the file ``tmp`` has the ``kind`` digest ``digest``."""
    actual = HASHERS[kind](tmp)
    if actual != digest:
        raise ChecksumMismatch(f"{origin}: checksum mismatch ({kind} {actual[:12]}..., "
                               f"expected {digest[:12]}...)")


def prepare_folder(target):
    """Create the target's folder and remove what killed downloads left there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_temps(target.parent)


def attempts(n):
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def partial_path(target):
    """Where a resumable download keeps the bytes received so far: ``.<name>.part`` beside it."""
    target = Path(target)
    return target.with_name(f".{target.name}.part")


def _whole_transfer(url, target, digest, kind, pace, progress):
    """One try: the whole file into a temporary file, renamed to ``target`` once verified."""
    with local(target), atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            _stream(url, handle, target, pace, progress=progress)  # (errors name the target)
        _verify(tmp, digest, target, kind)


def _continue(url, handle, where, pace, progress):
    """Append the bytes after those ``handle`` holds; from byte 0 if it holds the whole file or
    more (the server answers 416: nothing after them)."""
    start = handle.seek(0, os.SEEK_END)
    try:
        _stream(url, handle, where, pace, start=start, progress=progress)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:
            raise
        with local(where):
            handle.truncate(0)
        _stream(url, handle, where, pace, progress=progress)


def _resumed_transfer(url, target, digest, kind, pace, progress):
    """One try that continues ``.<name>.part`` (left by an earlier try or a killed process).

    The partial file is locked while this process writes it, so two downloads of the same file
    never interleave. Once whole it is verified and renamed to ``target``; a partial file that
    turns out damaged is removed, so that the next try starts from zero.
    """
    part = partial_path(target)
    with local(part):
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "ab") as handle:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CamlkitError(f"{target}: another process is downloading it ({part} is locked); "
                               f"wait for it to end") from None
        try:
            _continue(url, handle, part, pace, progress)
        except BaseException:
            handle.flush()
            if not os.fstat(fd).st_size:  # nothing received: leave no empty partial file
                part.unlink(missing_ok=True)
            raise
        with local(part):
            handle.flush()
            os.fsync(fd)
        try:
            _verify(part, digest, target, kind)
        except ChecksumMismatch:
            part.unlink(missing_ok=True)
            raise
        with local(target):
            os.replace(part, target)
    with local(target.parent):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename durable
        finally:
            os.close(dir_fd)


def fetch(url, target, digest, retries=3, backoff=1.0, timeout=60, kind="sha256", resume=False,
          progress=None, deadline=DEADLINE, min_rate=MIN_RATE):
    """Download ``url`` to ``target``, verified against ``digest`` (a ``kind`` of HASHERS).

    Connection errors, cut transfers and transfers past ``deadline`` seconds or slower than
    ``min_rate`` bytes/s (over each ``timeout`` seconds; 0: no minimum) are retried ``retries``
    times, with a delay that doubles from ``backoff`` seconds; a checksum mismatch is downloaded
    once more, at once; a local file error (:class:`LocalFileError`) is never retried.
    ``resume``: keep the bytes received in ``.<name>.part`` and continue from there (HTTP Range)
    on the next try or the next run; otherwise each try starts over in a temporary file. Either
    way nothing appears under ``target`` unless it verified. ``progress``: a label for a
    progress bar in bytes.
    """
    target = Path(target)
    prepare_folder(target)
    transfer = _resumed_transfer if resume else _whole_transfer
    pace = (timeout, deadline, min_rate)
    attempt, mismatches = 0, 0
    while True:
        try:
            transfer(url, target, digest, kind, pace, progress)
            return
        except ChecksumMismatch as err:
            mismatches += 1
            if mismatches > 1:
                raise CamlkitError(f"{err}, again after downloading it a second time") from None
            continue  # a damaged transfer: download it once more, at once
        except urllib.error.HTTPError as err:
            if 300 <= err.code < 400:  # urllib follows redirects; one that comes back is a loop
                raise CamlkitError(f"{url}: HTTP {err.code}, redirected in a loop (more than "
                                   f"{urllib.request.HTTPRedirectHandler.max_redirections} "
                                   f"redirects); check --base-url") from None
            if err.code < 500 or attempt == retries:
                raise CamlkitError(f"{url}: HTTP {err.code} {_one_line(err.reason)}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            if attempt == retries:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError):
                    reason = f"no answer within {timeout:g} s; a slow connection may need a larger --timeout"
                raise CamlkitError(f"{url}: download failed after {attempts(retries + 1)} "
                                   f"({_one_line(reason)}){_kept(target) if resume else ''}") from None
        time.sleep(backoff * 2**attempt)
        attempt += 1


def _one_line(text):
    return " ".join(str(text).split())


def _kept(target):
    """What a failed resumable download leaves for the next run, said in the error."""
    part = partial_path(target)
    size = part.stat().st_size if part.is_file() else 0
    return f"; the {size} bytes received are kept in {part} and the next run continues from there" if size else ""


def copy_verified(origin, target, digest, kind="sha256"):
    """Copy a local file to ``target`` through a temporary file, renamed once verified."""
    target = Path(target)
    prepare_folder(target)
    with atomic_path(target) as tmp:
        shutil.copyfile(origin, tmp)
        _verify(tmp, digest, origin, kind)


def already_there(target, digest, kind="sha256"):
    """Whether ``target`` is a file with the ``kind`` digest ``digest`` (then nothing is fetched)."""
    return Path(target).is_file() and HASHERS[kind](target) == digest


def check_base_url(base_url, example):
    """An http(s) or file URL with a place in it; one line (with ``example``) for anything else."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise CamlkitError(f"--base-url {base_url}: expected an http:// or https:// URL, "
                           f"e.g. {example}")
    return base_url
