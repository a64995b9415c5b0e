"""camlkit/runtime/weights.py and camlkit/data/fetch.py: the authors' networks fetched, resumed, verified, loaded.

These machines cannot reach GitHub: every test serves a synthetic checkpoint in the released
layout (a 2-filter CAMLNet, 1.5 MB) from a real HTTP server on 127.0.0.1 and passes a registry
naming it with its own git blob id; nothing here depends on the pinned ids of the real files.
"""

import http.server
import io
import re
import subprocess
import sys
import threading
import urllib.parse

import pytest
import torch
from standins import write_standin

import camlkit
from camlkit import CAMLConfig, CAMLNet
from camlkit.errors import CamlkitError
from camlkit.runtime.released import camlkit_to_released_key
from camlkit.runtime.weights import RELEASED, ReleasedWeights, cached, default_dest, fetch_weights, pretrained


def released_bytes(seed=0, atrium_bias=0.0):
    """A 2-filter CAMLNet saved as the authors save theirs: a plain state_dict, their key names.
    ``atrium_bias`` is added to f_v's atrium logit (a large one: every voxel is atrium)."""
    torch.manual_seed(seed)
    net = CAMLNet(CAMLConfig(n_filters=2))
    with torch.no_grad():
        net.f_v.decoder.out_conv.bias[1] += atrium_bias
    state = {camlkit_to_released_key(k): v for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def git_blob(data):
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@pytest.fixture(scope="module")
def synthetic():
    data, state = released_bytes()
    return {"bytes": data, "state": state, "blob": git_blob(data)}


@pytest.fixture
def registry(synthetic):
    """The real repository paths of the 4- and 16-labeled files, with the synthetic file's id."""
    return {n: ReleasedWeights(n, RELEASED[n].path, synthetic["blob"]) for n in (4, 16)}


class WeightsHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` ({path: bytes}), honouring ``Range: bytes=N-`` unless ``ranges`` is off.
    Paths in ``cut_once`` send half the promised bytes once and close; in ``corrupt_once`` /
    ``corrupt`` one byte flipped (once / always). ``requests``: (path, Range header) of each GET."""

    files, ranges, cut_once, corrupt_once, corrupt, requests = {}, True, set(), set(), set(), []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = urllib.parse.unquote(self.path.lstrip("/"))
        asked = self.headers.get("Range")
        self.requests.append((path, asked))
        body = self.files.get(path)
        if body is None:
            self.send_error(404)
            return
        if path in self.corrupt or path in self.corrupt_once:
            self.corrupt_once.discard(path)
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
            body = bytes(body)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and self.ranges else 0
        if start >= len(body) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if path in self.cut_once:
            self.cut_once.discard(path)
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server(synthetic, registry):
    """The synthetic file at the 4- and 16-labeled paths of the authors' repository."""
    handler = type("Handler", (WeightsHandler,), {
        "files": {w.path: synthetic["bytes"] for w in registry.values()}, "ranges": True,
        "cut_once": set(), "corrupt_once": set(), "corrupt": set(), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{httpd.server_address[1]}/", "handler": handler}
    httpd.shutdown()
    httpd.server_close()


def fetch16(server, registry, dest, **kwargs):
    kwargs = {"retries": 2, "backoff": 0, "progress": False, **kwargs}
    return fetch_weights(16, dest, server["url"], registry=registry, **kwargs)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- the registry

def test_pinned_registry_names_the_authors_files():
    assert sorted(RELEASED) == [4, 8, 16]
    assert RELEASED[16].path == ("model/LA_CAML_16_memory256_feat64_labeled_numfiltered_12800_consistency_1_"
                                 "rampup_15.0_consis_o_0.05_iter_15000_seed_3407/caml3d_v1/iter_15000.pth")
    assert "rampup_40.0" in RELEASED[4].path and "rampup_20.0" in RELEASED[8].path
    assert RELEASED[8].blob == "f0d091dabb00f3a035a9a3e9a53726cdefd54251"
    assert camlkit.runtime.weights.BASE_URL == ("https://raw.githubusercontent.com/Herschel555/CAML/"
                                        "b63547927eef5b7ae47bd62452e28517d13545e4/")
    assert [w.name for w in RELEASED.values()] == ["caml_la_4labeled_iter15000.pth",
                                                   "caml_la_8labeled_iter15000.pth",
                                                   "caml_la_16labeled_iter15000.pth"]
    with pytest.raises(CamlkitError, match="labeled=32: the authors published networks for 4, 8, 16"):
        cached(32)


def test_blob_id_is_what_git_hash_object_prints(tmp_path, synthetic):
    path = tmp_path / "f.pth"
    path.write_bytes(synthetic["bytes"])
    git = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert camlkit.pretrained.blob_id(path) == git.stdout.strip() == synthetic["blob"]


# ----------------------------------------------------------------------------- fetch and verify

def test_fetch_verifies_and_a_second_call_fetches_nothing(server, registry, synthetic, tmp_path):
    path, what = fetch16(server, registry, tmp_path)
    assert (path, what) == (tmp_path / "caml_la_16labeled_iter15000.pth", "fetched")
    assert path.read_bytes() == synthetic["bytes"] and leftovers(tmp_path) == []
    assert server["handler"].requests == [(registry[16].path, None)]
    assert fetch16(server, registry, tmp_path) == (path, "present")
    assert len(server["handler"].requests) == 1
    assert cached(16, tmp_path, registry) == path and cached(4, tmp_path, registry) is None


def test_a_cut_transfer_resumes_from_the_bytes_received(server, registry, synthetic, tmp_path):
    size = len(synthetic["bytes"])
    server["handler"].cut_once.add(registry[16].path)
    path, _ = fetch16(server, registry, tmp_path)
    assert path.read_bytes() == synthetic["bytes"]
    (first, none), (again, asked) = server["handler"].requests
    assert first == again == registry[16].path and none is None
    assert asked == f"bytes={size // 2}-"  # only the second half was asked for
    assert leftovers(tmp_path) == []


def test_a_cut_run_keeps_its_bytes_and_the_next_run_continues(server, registry, synthetic, tmp_path):
    size = len(synthetic["bytes"])
    server["handler"].cut_once.add(registry[16].path)
    with pytest.raises(CamlkitError) as err:
        fetch16(server, registry, tmp_path, retries=0)
    message = str(err.value)
    assert "\n" not in message and "download failed after 1 attempt" in message
    assert f"the {size // 2} bytes received are kept in" in message
    assert not (tmp_path / registry[16].name).exists()
    assert (tmp_path / f".{registry[16].name}.part").stat().st_size == size // 2
    path, what = fetch16(server, registry, tmp_path)
    assert what == "fetched" and path.read_bytes() == synthetic["bytes"]
    assert server["handler"].requests[-1] == (registry[16].path, f"bytes={size // 2}-")
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_range_restarts_the_file_cleanly(server, registry, synthetic, tmp_path):
    (tmp_path / f".{registry[16].name}.part").write_bytes(b"bytes of some other file" * 1000)
    server["handler"].ranges = False
    path, _ = fetch16(server, registry, tmp_path)
    assert path.read_bytes() == synthetic["bytes"]
    assert server["handler"].requests == [(registry[16].path, "bytes=24000-")]  # asked, got 200
    assert leftovers(tmp_path) == []


def test_a_partial_file_as_long_as_the_file_starts_over(server, registry, synthetic, tmp_path):
    size = len(synthetic["bytes"])
    (tmp_path / f".{registry[16].name}.part").write_bytes(b"x" * size)  # 416 from the server
    path, _ = fetch16(server, registry, tmp_path)
    assert path.read_bytes() == synthetic["bytes"]
    assert [r for _, r in server["handler"].requests] == [f"bytes={size}-", None]


def test_damaged_bytes_are_fetched_once_more(server, registry, synthetic, tmp_path):
    server["handler"].corrupt_once.add(registry[16].path)
    path, _ = fetch16(server, registry, tmp_path)
    assert path.read_bytes() == synthetic["bytes"]
    assert [r for _, r in server["handler"].requests] == [None, None]  # the second from byte 0


def test_bytes_damaged_every_time_are_refused_in_one_line(server, registry, tmp_path):
    server["handler"].corrupt.add(registry[16].path)
    with pytest.raises(CamlkitError) as err:
        fetch16(server, registry, tmp_path)
    message = str(err.value)
    assert "\n" not in message and registry[16].name in message
    assert re.search(r"checksum mismatch \(git blob [0-9a-f]{12}\.\.\., expected "
                     + registry[16].blob[:12], message)
    assert message.endswith("again after downloading it a second time")
    assert len(server["handler"].requests) == 2
    assert list(tmp_path.iterdir()) == []  # nothing under the final name, no partial file


def test_a_wrong_blob_id_is_refused(server, registry, tmp_path):
    wrong = {16: ReleasedWeights(16, registry[16].path, "0" * 40)}
    with pytest.raises(CamlkitError, match="checksum mismatch .*expected 000000000000"):
        fetch16(server, wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_file_missing_on_the_server_is_404_in_one_line(server, registry, tmp_path):
    gone = {16: ReleasedWeights(16, "model/elsewhere/iter_15000.pth", registry[16].blob)}
    with pytest.raises(CamlkitError, match=r"model/elsewhere/iter_15000.pth: HTTP 404"):
        fetch16(server, gone, tmp_path)
    assert len(server["handler"].requests) == 1 and list(tmp_path.iterdir()) == []


def test_a_partial_file_another_process_writes_is_left_alone(server, registry, tmp_path):
    part = tmp_path / f".{registry[16].name}.part"
    part.write_bytes(b"first bytes")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(part)!r}, 'ab'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True)\n"
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CamlkitError, match="another process is downloading it"):
            fetch16(server, registry, tmp_path)
        assert part.read_bytes() == b"first bytes" and server["handler"].requests == []
    finally:
        holder.kill()
        holder.wait()


def test_copy_from_a_local_source(registry, synthetic, tmp_path):
    as_repo = tmp_path / "CAML"
    (as_repo / registry[16].path).parent.mkdir(parents=True)
    (as_repo / registry[16].path).write_bytes(synthetic["bytes"])
    path, what = fetch_weights(16, tmp_path / "d", source=as_repo, registry=registry)
    assert what == "copied" and path.read_bytes() == synthetic["bytes"]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / registry[4].name).write_bytes(synthetic["bytes"])  # holding the file under its cache name
    assert fetch_weights(4, tmp_path / "d", source=flat, registry=registry)[1] == "copied"
    with pytest.raises(CamlkitError, match="--source .*flat: no 16-labeled network there"):
        fetch_weights(16, tmp_path / "e", source=flat, registry=registry)
    damaged = bytearray(synthetic["bytes"])
    damaged[100] ^= 1
    (flat / registry[16].name).write_bytes(bytes(damaged))
    with pytest.raises(CamlkitError, match="checksum mismatch"):
        fetch_weights(16, tmp_path / "e", source=flat, registry=registry)
    assert list((tmp_path / "e").iterdir()) == []


def test_cache_folder_follows_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert default_dest() == tmp_path / "th" / "hub" / "checkpoints" / "camlkit"


# ----------------------------------------------------------------------------- camlkit.pretrained

def test_pretrained_downloads_once_and_returns_the_network(server, registry, synthetic, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(CamlkitError) as err:
        pretrained(16, download=False, registry=registry)
    assert str(err.value) == (f"the authors' 16-labeled network is not in {tmp_path}/th/hub/checkpoints/"
                              f"camlkit: `camlkit download --weights 16` fetches it")
    net = pretrained(16, registry=registry, base_url=server["url"], progress=False)
    assert isinstance(net, CAMLNet) and not net.training and net.config.n_filters == 2
    assert torch.equal(net.f_v.encoder.stage1[0].weight, synthetic["state"]["encoder1.block_one.conv.0.weight"])
    assert camlkit.pretrained.cached(16, registry=registry) == (
        tmp_path / "th" / "hub" / "checkpoints" / "camlkit" / "caml_la_16labeled_iter15000.pth")
    again = pretrained(16, download=False, registry=registry)  # from the cache, no request
    assert len(server["handler"].requests) == 1
    assert torch.equal(again.pred_a[3].bias, net.pred_a[3].bias)


@pytest.mark.parametrize("other", ["another network", "weights changed by 0.01"])
def test_pretrained_loads_only_the_pinned_file(server, registry, synthetic, tmp_path, other):
    # any file under the cache name loaded silently, even with download=True
    if other == "another network":
        data, _ = released_bytes(seed=1)
    else:
        state = {k: v.clone() for k, v in synthetic["state"].items()}
        state["decoder1.out_conv.bias"] += 0.01
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    path = tmp_path / registry[16].name
    path.write_bytes(data)
    with pytest.raises(CamlkitError) as err:
        pretrained(16, download=False, dest=tmp_path, registry=registry)
    assert str(err.value) == (f"{path}: not the authors' 16-labeled network (its git blob id is not "
                              f"{synthetic['blob'][:12]}...): `camlkit download --weights 16` fetches it again")
    net = pretrained(16, dest=tmp_path, registry=registry, base_url=server["url"], progress=False)
    assert len(server["handler"].requests) == 1 and path.read_bytes() == synthetic["bytes"]
    assert torch.equal(net.f_v.decoder.out_conv.bias, synthetic["state"]["decoder1.out_conv.bias"])


def test_a_verified_file_is_not_hashed_again_until_it_changes(registry, synthetic, tmp_path, monkeypatch):
    import os

    path = tmp_path / registry[16].name
    path.write_bytes(synthetic["bytes"])
    hashed = []
    real = camlkit.runtime.weights.blob_id
    monkeypatch.setattr(camlkit.runtime.weights, "blob_id", lambda p: hashed.append(p) or real(p))
    for _ in range(2):
        pretrained(16, download=False, dest=tmp_path, registry=registry)
    assert hashed == [path]  # the second load: size and mtime unchanged, nothing hashed
    changed = bytearray(synthetic["bytes"])
    changed[-100] ^= 0x01  # same size; the write moves the modification time
    path.write_bytes(bytes(changed))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(CamlkitError, match="not the authors' 16-labeled network"):
        pretrained(16, download=False, dest=tmp_path, registry=registry)
    assert hashed == [path, path]


@pytest.mark.parametrize("labeled, registry, expected", [
    (4.5, None, "labeled=4.5: the authors published networks for 4, 8, 16 labeled scans"),
    (True, None, "labeled=True: the authors published networks for 4, 8, 16 labeled scans"),
    (4, {4: "x"}, "registry={4: 'x'}: expected a dict {labeled: ReleasedWeights}"),
    (1, [1, 2], "registry=[1, 2]: expected a dict {labeled: ReleasedWeights}"),
])
def test_pretrained_refuses_what_is_no_entry_in_one_line(tmp_path, labeled, registry, expected):
    with pytest.raises(CamlkitError) as err:
        pretrained(labeled, download=False, dest=tmp_path, registry=registry)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- camlkit download --weights

def download(argv, capsys):
    from camlkit.cli import main

    code = main(["download", *map(str, argv), "--backoff", "0"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_download_weights_command(server, registry, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(camlkit.runtime.weights, "RELEASED", registry)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, out, err = download(["--weights", "all", "--base-url", server["url"]], capsys)
    assert code == 0, err
    cache = tmp_path / "th" / "hub" / "checkpoints" / "camlkit"
    assert out.splitlines() == [
        f"{cache}/caml_la_4labeled_iter15000.pth: fetched and verified (git blob {registry[4].blob})",
        f"{cache}/caml_la_16labeled_iter15000.pth: fetched and verified (git blob {registry[16].blob})"]
    assert re.search(r"caml_la_16labeled_iter15000.pth: 100%.*1.49M/1.49M", err)  # a bar in bytes
    code, out, _ = download(["--weights", "16", "--base-url", server["url"], "--quiet"], capsys)
    assert code == 0 and out.strip().endswith("already present and verified, nothing fetched "
                                              f"(git blob {registry[16].blob})")
    assert len(server["handler"].requests) == 2


@pytest.mark.parametrize("argv,expected", [
    (["--weights", "8"], "labeled=8: the authors published networks for 4, 16"),
    (["--weights", "16", "--only", "test.list"], "--only and --checksums are options of the LA download"),
    (["--weights", "16", "--base-url", "notaurl"], "--base-url notaurl: expected an http:// or https:// URL, "
                                                   "e.g. https://raw.githubusercontent.com/Herschel555/CAML/"),
])
def test_download_weights_bad_options(registry, tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.setattr(camlkit.runtime.weights, "RELEASED", registry)
    code, _, err = download([*argv, "--dest", tmp_path / "d", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "d").exists()


def test_download_weights_corrupt_is_one_line_from_the_command(server, registry, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(camlkit.runtime.weights, "RELEASED", registry)
    server["handler"].corrupt.add(registry[16].path)
    code, _, err = download(["--weights", "16", "--base-url", server["url"], "--dest", tmp_path, "--quiet"],
                            capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"camlkit download: error: {tmp_path}/caml_la_16labeled_iter15000.pth: checksum mismatch")
    assert list(tmp_path.iterdir()) == []


def test_bright_standin_calls_voxels_above_the_level_atrium_in_both_branches(tmp_path):
    """The course's stand-in for the authors' network (notebooks 4, 5, 7 at smoke size) must
    predict both classes: atrium exactly where the eval-mode input exceeds 1.5."""
    path = write_standin(tmp_path / "standin.pth", bright_is_atrium=True)
    net = camlkit.load_released_checkpoint(path).eval()
    x = torch.full((1, 1, 16, 16, 16), -1.0)
    x[..., 4:9, 4:9, 4:9] = 3.0  # a bright block, well above the level
    x[..., 12:, 12:, 12:] = 1.0  # bright, but below it
    with torch.no_grad():
        out = net(x)
    for branch in ("logits_v", "logits_a"):
        atrium = out[branch].argmax(1)[0]
        assert torch.equal(atrium, (x[0, 0] > 1.5).long()), branch
    plain = camlkit.load_released_checkpoint(write_standin(tmp_path / "plain.pth")).eval()
    with torch.no_grad():
        assert not torch.equal(plain(x)["logits_v"].argmax(1)[0], (x[0, 0] > 1.5).long())


# ----------------------------------------------------------------------------- local errors are local

def test_a_partial_file_that_is_a_link_is_one_line_and_not_retried(server, registry, tmp_path):
    dest = tmp_path / "cache"
    dest.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"123456789")
    part = dest / f".{registry[16].name}.part"
    part.symlink_to(elsewhere)
    with pytest.raises(CamlkitError) as err:
        fetch16(server, registry, dest, retries=3)
    assert str(err.value) == (f"{part} is a symbolic link (to {elsewhere}): camlkit writes this file itself "
                              f"and never through a link; remove the link (its target is left untouched)")
    assert server["handler"].requests == [] and elsewhere.read_bytes() == b"123456789"


def test_a_partial_file_that_cannot_be_written_is_one_line_and_says_nothing_is_kept(server, registry, tmp_path,
                                                                                  capsys, monkeypatch):
    monkeypatch.setattr(camlkit.runtime.weights, "RELEASED", registry)
    dest = tmp_path / "cache"
    part = dest / f".{registry[16].name}.part"
    part.mkdir(parents=True)  # what cannot be opened as a file: the same every time
    code, _, err = download(["--weights", "16", "--dest", dest, "--base-url", server["url"], "--retries", 3,
                             "--quiet"], capsys)
    assert code == 2 and err == (f"camlkit download: error: {part}: Is a directory (a local file error, not the "
                                 f"network's: nothing was retried)\n")
    assert server["handler"].requests == []  # nothing fetched, nothing said to be kept
