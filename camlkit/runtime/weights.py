"""The authors' trained CAML networks: fetched once, verified, loaded in one call.

The authors published the network of the final iteration (15,000) of their LA runs with 4, 8
and 16 labeled scans (seed 3407) next to their code, as plain state_dicts of ``CAML3d_v1``
(about 80 MB each; camlkit.runtime.checkpoint maps their keys). The paper reports these runs in Table 1
(Dice 87.34 / 89.62 / 90.78 % as the mean over three seeds; these files are one seed each).

- **Pinned.** :data:`RELEASED` names each file at one commit of github.com/Herschel555/CAML
  with its git blob id (what ``git hash-object`` prints): the id fixes the exact bytes, so a file
  from any mirror can be checked against it.
- **Cached** where PyTorch caches weights (torchvision, timm): ``torch.hub.get_dir()/
  checkpoints/camlkit/`` (``$TORCH_HOME`` moves it), under names that say which is which
  (``caml_la_16labeled_iter15000.pth``). A file gets its final name only once its blob id
  matched (camlkit.data.fetch); still, anything can be copied under that name later, so every
  file loaded as the authors' network is checked against its blob id first
  (:func:`verified`). The check is remembered beside the file (``.<name>.verified``: its size,
  modification time and blob id), so the second load of an unchanged file costs nothing.
- **Fetched** by ``camlkit download --weights 4|8|16|all`` or :func:`pretrained`: with a
  progress bar in bytes, retries, resume of a cut transfer, one retry of a damaged one, and one
  line naming the file when its blob id does not match. A file already there and verified is
  not fetched again.

``camlkit.pretrained(labeled=16)`` returns the CAMLNet in eval mode (``net.f_v`` segments).
"""

import json
import operator
from dataclasses import dataclass
from pathlib import Path

import torch.hub

from camlkit.data.fetch import DEADLINE, MIN_RATE, blob_id, check_base_url, copy_verified, fetch, file_url
from camlkit.errors import CamlkitError
from camlkit.files import sigterm_as_exit, write_text
from camlkit.runtime.released import load_released_checkpoint

COMMIT = "b63547927eef5b7ae47bd62452e28517d13545e4"
BASE_URL = f"https://raw.githubusercontent.com/Herschel555/CAML/{COMMIT}/"


@dataclass(frozen=True)
class ReleasedWeights:
    """One published network: where it lies in the authors' repository and its git blob id."""
    labeled: int  # labeled scans of its training run (the rest of the 80 unlabeled)
    path: str  # the file in the repository at COMMIT
    blob: str  # its git blob id (SHA-1 of b"blob <size>\0" + bytes)

    @property
    def name(self) -> str:
        """The file's name in the cache: which network it is, at a glance."""
        return f"caml_la_{self.labeled}labeled_iter15000.pth"


def _run_folder(labeled, rampup):
    """The authors' folder name for a run (their training flags, written out)."""
    return (f"model/LA_CAML_{labeled}_memory256_feat64_labeled_numfiltered_12800_consistency_1_"
            f"rampup_{rampup}.0_consis_o_0.05_iter_15000_seed_3407/caml3d_v1/iter_15000.pth")


RELEASED = {
    4: ReleasedWeights(4, _run_folder(4, 40), "fc080480f5cfcc7702c3c6d8dc3de1bba9a48b19"),
    8: ReleasedWeights(8, _run_folder(8, 20), "f0d091dabb00f3a035a9a3e9a53726cdefd54251"),
    16: ReleasedWeights(16, _run_folder(16, 15), "d7f729cb8af5584d6e1962f76ad60aba7c0540df"),
}


def default_dest(torch_home=None) -> Path:
    """``torch.hub.get_dir()/checkpoints/camlkit``: PyTorch's weight cache (``$TORCH_HOME`` moves
    it; ``torch_home`` names another TORCH_HOME, whose hub folder is ``<torch_home>/hub``)."""
    hub = Path(torch_home) / "hub" if torch_home is not None else Path(torch.hub.get_dir())
    return hub / "checkpoints" / "camlkit"


def check_registry(registry=None) -> dict:
    """The registry (default :data:`RELEASED`): a dict {labeled: ReleasedWeights}; one line if not."""
    registry = RELEASED if registry is None else registry
    if not isinstance(registry, dict) or not all(
            isinstance(k, int) and isinstance(w, ReleasedWeights) for k, w in registry.items()):
        raise CamlkitError(f"registry={registry!r}: expected a dict {{labeled: ReleasedWeights}}, "
                           f"like camlkit.runtime.weights.RELEASED")
    return registry


def entry(labeled, registry=None) -> ReleasedWeights:
    """The registry's entry for ``labeled`` (a whole number, or its digits as text: "16");
    one line if it has none."""
    registry = check_registry(registry)
    try:
        return registry[int(labeled) if isinstance(labeled, str) else operator.index(labeled)]
    except (KeyError, ValueError, TypeError):
        raise CamlkitError(f"labeled={labeled}: the authors published networks for "
                           f"{', '.join(map(str, sorted(registry)))} labeled scans") from None


def released_for(blob, registry=None):
    """The entry whose blob id is ``blob`` (None: not one of the pinned files)."""
    registry = RELEASED if registry is None else registry
    return next((w for w in registry.values() if w.blob == blob), None)


def verified(path, blob) -> bool:
    """Whether the file ``path`` has the git blob id ``blob``. The answer for a file is kept in
    ``.<name>.verified`` beside it with its size and modification time, and reused while both
    are unchanged: an unchanged file is hashed once (about 0.3 s for the authors' 80 MB)."""
    path = Path(path)
    if not path.is_file():
        return False
    stat, note = path.stat(), path.with_name(f".{path.name}.verified")
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        known = json.loads(note.read_text())
        if isinstance(known, dict) and {k: known.get(k) for k in key} == key:
            return known.get("blob") == blob
    except (OSError, ValueError):
        pass
    actual = blob_id(path)
    try:
        write_text(json.dumps({**key, "blob": actual}) + "\n", note)
    except (OSError, CamlkitError):  # a read-only cache: hashed again next time
        pass
    return actual == blob


def cached(labeled=16, dest=None, registry=None):
    """The network's file in the cache, or None if it has not been downloaded. (Whether it is
    the pinned file: :func:`verified`.)
    """
    path = Path(dest if dest is not None else default_dest()) / entry(labeled, registry).name
    return path if path.is_file() else None


def download_command_hint(labeled) -> str:
    return f"camlkit download --weights {labeled}"


def fetch_weights(labeled=16, dest=None, base_url=BASE_URL, source=None, registry=None, retries=3,
                  backoff=1.0, timeout=60.0, progress=True, deadline=DEADLINE, min_rate=MIN_RATE):
    """Put one network in ``dest`` (default the cache), verified. Returns (path, what happened):
    "present" (already there and verified: nothing fetched), "fetched" or "copied".

    ``source``: a local folder laid out like the authors' repository, or holding the file under
    its cache name, instead of ``base_url``.
    """
    weights = entry(labeled, registry)
    dest = Path(dest if dest is not None else default_dest())
    if dest.exists() and not dest.is_dir():
        raise CamlkitError(f"--dest {dest}: is an existing file, expected a folder")
    target = dest / weights.name
    if verified(target, weights.blob):
        return target, "present"
    if source is not None:
        source = Path(source)
        places = [source / weights.path, source / weights.name]
        origin = next((p for p in places if p.is_file()), None)
        if origin is None:
            raise CamlkitError(f"--source {source}: no {weights.labeled}-labeled network there "
                               f"(looked for {places[0]} and {places[1]})")
        copy_verified(origin, target, weights.blob, kind="git blob")
        return target, "copied"
    url = file_url(check_base_url(base_url, BASE_URL), weights.path)
    fetch(url, target, weights.blob, retries=retries, backoff=backoff, timeout=timeout,
          deadline=deadline, min_rate=min_rate,
          kind="git blob", resume=True, progress=weights.name if progress else None)
    return target, "fetched"


def pretrained(labeled=16, download=True, dest=None, registry=None, base_url=BASE_URL, progress=True):
    """The authors' CAML network trained with ``labeled`` labeled scans, in eval mode.

    Downloads it first if it is not in ``dest`` (default the cache) and ``download`` is true;
    with ``download=False`` a missing file is one line naming the command that fetches it. The
    file is loaded only if it is the pinned one (:func:`verified`); another file under its name
    is fetched again (``download=True``) or refused in one line. The architecture is read from
    the file (camlkit.runtime.released.load_released_checkpoint).
    """
    weights = entry(labeled, registry)
    path = cached(weights.labeled, dest, registry)
    if path is not None and not verified(path, weights.blob):
        if not download:
            raise CamlkitError(f"{path}: not the authors' {weights.labeled}-labeled network (its git "
                               f"blob id is not {weights.blob[:12]}...): "
                               f"`{download_command_hint(weights.labeled)}` fetches it again")
        path = None
    if path is None:
        if not download:
            where = Path(dest if dest is not None else default_dest())
            raise CamlkitError(f"the authors' {weights.labeled}-labeled network is not in {where}: "
                               f"`{download_command_hint(weights.labeled)}` fetches it")
        path, _ = fetch_weights(weights.labeled, dest, base_url, registry=registry, progress=progress)
    return load_released_checkpoint(path).eval()


pretrained.cached = cached  # the notebooks' question: is it there? (camlkit.pretrained.cached(16))
pretrained.blob_id = blob_id


# ----------------------------------------------------------------------------- command line

def weights_command(args, registry=None):
    """``camlkit download --weights 4|8|16|all`` (options of camlkit.data.download)."""
    if args.only or args.checksums:
        raise CamlkitError("--weights fetches the authors' networks: --only and --checksums are "
                           "options of the LA download")
    registry = RELEASED if registry is None else registry
    chosen = sorted(registry) if args.weights == "all" else [entry(args.weights, registry).labeled]
    base_url = args.base_url or BASE_URL
    if not args.source:
        check_base_url(base_url, BASE_URL)
    dest = Path(args.dest) if args.dest else default_dest()
    said = {"present": "already present and verified, nothing fetched", "fetched": "fetched and verified",
            "copied": "copied and verified"}
    for labeled in chosen:
        try:
            with sigterm_as_exit():
                path, what = fetch_weights(labeled, dest, base_url, args.source, registry, args.retries,
                                           args.backoff, args.timeout, progress=not args.quiet,
                                           deadline=args.deadline, min_rate=args.min_rate)
        except OSError as err:  # a full disk, a folder without write permission
            raise CamlkitError(f"{dest}: {err}".splitlines()[0]) from None
        print(f"{path}: {said[what]} (git blob {registry[labeled].blob})")
    return 0
