"""camlkit/data/download.py and data_scripts/download_la.py against a real HTTP server on 127.0.0.1."""

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from camlkit.cli import run_script
from camlkit.data import CASES_FOLDER, read_case, read_list
from camlkit.data.download import file_url, read_checksums

ROOT = Path(__file__).resolve().parents[1]


def main(argv):
    """``python data_scripts/download_la.py ARGS``: ``camlkit download ARGS``."""
    return run_script("download", argv)


class ReleaseHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; paths in ``truncate`` get half their bytes, paths in ``drop_once`` lose
    the connection without a response on their first request, paths in ``corrupt_once`` get one
    flipped byte on their first request, paths in ``slow`` wait 3 s before answering; paths in
    ``trickle`` send one byte every 0.25 s (at most 60 s), paths in ``loop`` redirect to themselves."""

    truncate = set()
    drop_once = set()
    corrupt_once = set()
    slow = set()
    trickle = set()
    loop = set()
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.lstrip("/")
        type(self).requests.append(path)
        if path in self.drop_once:
            self.drop_once.discard(path)
            self.close_connection = True
            return  # no status line at all: the client sees the connection drop
        if path in self.slow:
            time.sleep(3)
        if path in self.loop:
            self.send_response(302)
            self.send_header("Location", "/" + path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path in self.trickle:
            body = Path(self.directory, urllib.parse.unquote(path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body[:240]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.25)
            return
        if path in self.corrupt_once:
            self.corrupt_once.discard(path)
            body = bytearray(Path(self.directory, urllib.parse.unquote(path)).read_bytes())
            body[len(body) // 2] ^= 0xFF
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(bytes(body))
            return
        if path in self.truncate:
            body = Path(self.directory, urllib.parse.unquote(path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that gave up (a timeout test) is expected: its broken pipe, which a handler still
    sleeping hits after the test ended, must not land on a later test's stderr."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture
def server(tmp_path, la_dir):
    """A release-layout copy of two test cases + test.list served over HTTP."""
    served = tmp_path / "served"
    cases = read_list(la_dir / "test.list")[:2]
    for case in cases:
        relative = Path(CASES_FOLDER, case, "mri_norm2.h5")
        (served / relative).parent.mkdir(parents=True)
        shutil.copy(la_dir / relative, served / relative)
    shutil.copy(la_dir / "test.list", served / "test.list")

    handler = type("Handler", (ReleaseHandler,), {"truncate": set(), "drop_once": set(), "corrupt_once": set(),
                                                  "slow": set(), "trickle": set(), "loop": set(), "requests": []})

    def make(*args, **kwargs):
        return handler(*args, directory=str(served), **kwargs)

    httpd = QuietServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/", "cases": cases, "handler": handler,
           "served": served}
    httpd.shutdown()
    httpd.server_close()


def quoted(relpath):
    return file_url("", relpath).lstrip("/")


def h5(case):
    return f"{CASES_FOLDER}/{case}/mri_norm2.h5"


def run(argv, capsys):
    code = main([str(a) for a in argv] + ["--quiet", "--backoff", "0"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_packaged_checksums_cover_the_release():
    entries = read_checksums()
    assert len(entries) == 102
    assert sum(k.endswith("/mri_norm2.h5") for k in entries) == 100
    assert "train.list" in entries and "test.list" in entries


def test_url_is_quoted():
    url = file_url("https://raw.githubusercontent.com/yulequan/UA-MT/master/data/", h5("ABC"))
    assert url == "https://raw.githubusercontent.com/yulequan/UA-MT/master/data/2018LA_Seg_Training%20Set/ABC/mri_norm2.h5"


def test_download_two_cases_and_list(server, tmp_path, capsys):
    dest = tmp_path / "dest"
    cases = server["cases"]
    code, out, err = run(["--dest", dest, "--base-url", server["url"], "--only", *cases, "test.list"], capsys)
    assert code == 0, err
    for case in cases:
        image, label = read_case(dest / h5(case))
        assert image.ndim == 3
    assert (dest / "test.list").read_bytes() == (server["served"] / "test.list").read_bytes()
    assert "3 fetched and verified" in out
    assert not list(dest.rglob("*.part"))
    # a rerun finds everything verified and fetches nothing
    server["handler"].requests.clear()
    code, out, _ = run(["--dest", dest, "--base-url", server["url"], "--only", *cases, "test.list"], capsys)
    assert code == 0 and "3 already present" in out and server["handler"].requests == []


def test_env_var_sets_the_default_destination(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CAMLKIT_DATA", str(tmp_path / "from_env"))
    code, _, err = run(["--base-url", server["url"], "--only", "test.list"], capsys)
    assert code == 0, err
    assert (tmp_path / "from_env" / "test.list").is_file()


def test_dropped_connection_is_retried(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].drop_once.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case, "--retries", 2], capsys)
    assert code == 0, err
    assert server["handler"].requests.count(quoted(h5(case))) == 2
    read_case(tmp_path / "d" / h5(case))


def test_dropped_connection_without_retries_fails(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].drop_once.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case, "--retries", 0], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and case in err
    assert "failed after 1 attempt (" in err
    assert not (tmp_path / "d" / h5(case)).exists()


def test_download_cut_mid_file_fails_cleanly(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].truncate.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case, "--retries", 1], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and case in err and "bytes" in err
    assert server["handler"].requests.count(quoted(h5(case))) == 2  # retried once, cut again
    folder = tmp_path / "d" / CASES_FOLDER / case
    assert not (folder / "mri_norm2.h5").exists() and not list(folder.glob("*"))


def test_checksum_mismatch(server, tmp_path, capsys):
    case = server["cases"][0]
    bad = tmp_path / "sums.txt"
    bad.write_text(f"{hashlib.sha256(b'other').hexdigest()}  {h5(case)}\n")
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--checksums", bad], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "checksum mismatch" in err and case in err
    assert "again after downloading it a second time" in err
    assert server["handler"].requests.count(quoted(h5(case))) == 2  # retried once, then failed
    assert not list((tmp_path / "d").rglob("*.h5")) and not list((tmp_path / "d").rglob(".*"))


def test_missing_file_on_server(server, tmp_path, capsys):
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"],
                        "--only", "ZQPMJ4XEC5A4BISD45P1"], capsys)
    assert code != 0 and "404" in err and len(err.strip().splitlines()) == 1


def test_unknown_only_name(tmp_path, capsys):
    code, _, err = run(["--dest", tmp_path, "--only", "NOT_A_CASE"], capsys)
    assert code != 0 and "NOT_A_CASE" in err


def test_copy_from_local_source(la_dir, tmp_path, capsys):
    cases = read_list(la_dir / "test.list")[:3]
    # a partial source of our own: two cases, the lists, but not the third case
    source = tmp_path / "src"
    for case in cases[:2]:
        (source / h5(case)).parent.mkdir(parents=True)
        shutil.copyfile(la_dir / h5(case), source / h5(case))
    for name in ("train.list", "test.list"):
        shutil.copyfile(la_dir / name, source / name)
    absent = cases[2]
    dest = tmp_path / "d"
    code, out, err = run(["--dest", dest, "--source", source, "--only", *cases, "train.list", "test.list"],
                         capsys)
    assert code == 0, err
    assert "4 fetched and verified" in out  # 2 cases + train.list + test.list (identical to the release's)
    assert "1 not in the source" in out and absent in out
    assert (dest / "train.list").read_text() == (la_dir / "train.list").read_text()
    assert (dest / h5(cases[0])).is_file() and not (dest / h5(absent)).exists()


def test_copy_detects_a_corrupt_source_file(la_dir, tmp_path, capsys):
    case = read_list(la_dir / "test.list")[0]
    source = tmp_path / "src"
    (source / h5(case)).parent.mkdir(parents=True)
    data = bytearray((la_dir / h5(case)).read_bytes())
    data[1000] ^= 0xFF
    (source / h5(case)).write_bytes(bytes(data))
    code, _, err = run(["--dest", tmp_path / "d", "--source", source, "--only", case], capsys)
    assert code != 0 and "checksum mismatch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / h5(case)).exists()


def test_wrapper_script_runs(la_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "data_scripts" / "download_la.py"), "--dest", str(tmp_path / "d"),
         "--source", str(la_dir), "--only", "test.list", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "test.list").is_file()


def test_a_damaged_transfer_is_downloaded_once_more(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].corrupt_once.add(quoted(h5(case)))
    code, out, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case], capsys)
    assert code == 0, err
    assert server["handler"].requests.count(quoted(h5(case))) == 2
    read_case(tmp_path / "d" / h5(case))
    assert "1 fetched and verified" in out


def test_timeout_option(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].slow.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case, "--retries", 0,
                        "--timeout", 0.5], capsys)
    # the server does answer, correctly, after 3 s: a download that waited for it would succeed,
    # so a failure naming the 0.5 s deadline after one request is the timeout at work
    assert server["handler"].requests.count(quoted(h5(case))) == 1  # --retries 0: one attempt
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "failed after 1 attempt (no answer within 0.5 s; a slow connection may need a larger --timeout)" in err
    assert not list((tmp_path / "d").rglob("*.h5"))


@pytest.mark.parametrize("argv,expected", [
    (["--base-url", "notaurl"], "--base-url notaurl: expected an http:// or https:// URL"),
    (["--base-url", "ftp://example.org/la/"], "--base-url ftp://example.org/la/"),
    (["--timeout", 0], "--timeout 0.0: expected a positive number"),
    (["--retries", -1], "--retries -1: expected 0 or more"),
])
def test_bad_options_are_one_line(tmp_path, capsys, argv, expected):
    code, _, err = run(["--dest", tmp_path / "d", "--only", "test.list", *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "d").exists()


def test_dest_that_is_a_file(tmp_path, la_dir, capsys):
    (tmp_path / "d").write_text("x")
    code, _, err = run(["--dest", tmp_path / "d", "--source", la_dir, "--only", "test.list"], capsys)
    assert code == 2 and "--dest" in err and "existing file" in err and len(err.strip().splitlines()) == 1


def test_temporaries_of_a_killed_download_are_removed(server, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    case = server["cases"][0]
    folder = tmp_path / "d" / CASES_FOLDER / case
    folder.mkdir(parents=True)
    stale = folder / f".mri_norm2.h5.tmp-{dead.pid}"
    stale.write_bytes(b"the first half of a case")
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case], capsys)
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["mri_norm2.h5"]


@pytest.mark.slow  # fresh camlkit processes copying LA cases
def test_camlkit_download_subcommand(la_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "camlkit.cli", "download", "--dest", str(tmp_path / "d"), "--source", str(la_dir),
         "--only", "test.list", "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "test.list").read_text() == (la_dir / "test.list").read_text()
    result = subprocess.run([sys.executable, "-m", "camlkit.cli", "download", "--base-url", "notaurl",
                             "--dest", str(tmp_path / "e")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("camlkit download: error: --base-url notaurl: expected an http:// or "
                                     "https:// URL, e.g. https://raw.githubusercontent.com/yulequan/UA-MT/master/data/")
    help_text = subprocess.run([sys.executable, "-m", "camlkit.cli", "download", "--help"], capture_output=True,
                               text=True, cwd=tmp_path).stdout
    assert "--timeout" in help_text and "(default: 60.0)" in help_text


def test_wrapper_scripts_use_the_installed_package():
    for name in ("download_la.py", "preprocess_la.py"):
        text = (ROOT / "data_scripts" / name).read_text()
        assert "sys.path" not in text and "from camlkit." in text


@pytest.mark.parametrize("entry", ["../../esc/evil.list", "/tmp/camlkit-evil.list", "a/../../evil.list"])
def test_an_entry_outside_dest_is_refused_before_anything_is_fetched(server, tmp_path, capsys, entry):
    # the server would serve it (".." is dropped from the URL path): the old code wrote it outside --dest
    (server["served"] / "esc").mkdir()
    (server["served"] / "esc" / "evil.list").write_text("planted\n")
    evil = hashlib.sha256(b"planted\n").hexdigest()
    listing = (server["served"] / "test.list").read_bytes()
    sums = tmp_path / "sums.txt"
    sums.write_text(f"{hashlib.sha256(listing).hexdigest()}  test.list\n{evil}  {entry}\n")
    dest = tmp_path / "d" / "x"
    code, _, err = run(["--dest", dest, "--base-url", server["url"], "--checksums", sums], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"sums.txt, line 2: '{entry}' lies outside the destination folder" in err
    assert server["handler"].requests == []  # refused before the first request
    assert not (tmp_path / "esc").exists() and not Path("/tmp/camlkit-evil.list").exists()
    assert not (tmp_path / "d").exists()


def test_entries_given_directly_are_checked_too(tmp_path):
    from camlkit.data.download import copy_release, download_release
    from camlkit.errors import CamlkitError

    (tmp_path / "src").mkdir()
    for call in (lambda: download_release(tmp_path / "d", {"../evil": "0" * 64}, "http://127.0.0.1:9/"),
                 lambda: copy_release(tmp_path / "src", tmp_path / "d", {"../evil": "0" * 64})):
        with pytest.raises(CamlkitError, match="'../evil' lies outside the destination folder"):
            call()
    assert not (tmp_path / "d").exists()


# ----------------------------------------------------------------------------- deadlines, local errors

@pytest.mark.parametrize("limits, expected", [
    (["--min-rate", 100, "--timeout", 1], "below --min-rate 100 bytes/s"),
    (["--min-rate", 0, "--deadline", 1.5], "the transfer took longer than --deadline 1.5 s"),
])
def test_a_server_that_trickles_bytes_is_given_up(server, tmp_path, capsys, limits, expected):
    case = server["cases"][0]
    server["handler"].trickle.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case, "--retries", 0,
                        *limits], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "download failed after 1 attempt (" in err and expected in err
    assert not list((tmp_path / "d").rglob("*.h5")) and not list((tmp_path / "d").rglob(".*tmp*"))


def test_the_deadline_and_minimum_rate_are_flags_with_their_defaults_said(capsys):
    from camlkit.data.fetch import DEADLINE, MIN_RATE

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--deadline S seconds one try of one file may take in all" in text and f"(default: {DEADLINE})" in text
    assert "--min-rate BYTES_PER_S" in text and f"(default: {MIN_RATE})" in text


@pytest.mark.parametrize("argv, expected", [
    (["--deadline", 0], "--deadline 0.0: expected a positive number of seconds"),
    (["--min-rate", -1], "--min-rate -1.0: expected 0 or more bytes per second"),
])
def test_bad_deadline_options_are_one_line(tmp_path, capsys, argv, expected):
    code, _, err = run(["--dest", tmp_path / "d", "--only", "test.list", *argv], capsys)
    assert code == 2 and err == f"camlkit download: error: {expected}\n"


def test_a_redirect_loop_is_one_line(server, tmp_path, capsys):
    case = server["cases"][0]
    server["handler"].loop.add(quoted(h5(case)))
    code, _, err = run(["--dest", tmp_path / "d", "--base-url", server["url"], "--only", case], capsys)
    url = server["url"] + quoted(h5(case))
    assert code == 2 and err == (f"camlkit download: error: {url}: HTTP 302, redirected in a loop (more than 10 "
                                 f"redirects); check --base-url\n")


def test_a_local_file_error_is_reported_as_local_and_not_retried(server, tmp_path):
    # `ulimit -f 64` (KiB): the case file cannot be written whole, however often it is fetched
    import resource
    import signal

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    case = server["cases"][0]
    target = tmp_path / "d" / h5(case)
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "download", "--dest", str(tmp_path / "d"),
                          "--base-url", server["url"], "--only", case, "--retries", "3", "--backoff", "0",
                          "--quiet"], capture_output=True, text=True, timeout=300, preexec_fn=limit,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 2 and out.stderr == (f"camlkit download: error: {target}: File too large (a local "
                                                  f"file error, not the network's: nothing was retried)\n")
    assert server["handler"].requests.count(quoted(h5(case))) == 1  # not fetched again
    assert not target.exists() and not list(target.parent.iterdir())


def test_an_empty_checksum_list_is_refused(tmp_path, capsys):
    empty = tmp_path / "sums.txt"
    empty.write_text("\n")
    code, out, err = run(["--dest", tmp_path / "d", "--checksums", empty], capsys)
    assert code == 2 and err == (f"camlkit download: error: --checksums {empty}: no entries, nothing to fetch "
                                 f"(expected lines '<sha256>  <relative path>')\n")
    assert "fetched" not in out
