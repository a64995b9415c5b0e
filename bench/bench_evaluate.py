"""The paper's evaluation protocol on the CPU: the release's way against camlkit's, same weights.

    python -m bench.bench_evaluate [--data LA_DIR] [--cases 1] [--repeat 2] [--weights random trained]
                                   [--network caml|vnet] [--checkpoint FILE]

For each LA test case and each set of weights, one run prints side by side:

* **release**: the released evaluation's logic (``test_single_case_first_output`` in the
  release's ``code/utils/test_patch.py``, written again here in plain torch + NumPy): zero-pad,
  one 112x112x80 window per forward pass under ``torch.no_grad``, softmax, NumPy score and count
  maps, average, argmax; the network as trained (BatchNorm layers, default memory layout). With
  ``--network caml`` (the default) the network is the whole CAML model and each window runs its
  whole forward, as the release's ``test_3d.py`` does with its ``caml3d_v1``: both encoders and
  both decoders (CMA is off in eval mode), of which the first output is kept;
  ``--network vnet`` gives the release's loop f_v alone (the per-window comparison);
* **camlkit**: ``camlkit.evaluation.inference.sliding_window_predict`` on f_v, the only branch
  whose output the protocol uses (batched windows, BatchNorm folded into the convolutions,
  channels_last_3d, ``torch.inference_mode``), as ``camlkit evaluate`` runs it;

the seconds of each (best of ``--repeat`` runs, the two interleaved, after a one-window warm-up),
the speed-up, and the label check: the two label maps must be identical except where the
release's own foreground probability is within 1e-5 of 0.5 (a tie that float rounding decides).

Weights: ``random`` is the paper-sized CAML network (16 filters) as initialised (timing does not
depend on the weights, but its probabilities sit near 0.5, the hardest case for the label check);
``trained`` is the same network after ``--train-steps`` Adam steps of f_v on labeled LA crops,
so that its probabilities look like a trained model's; ``--checkpoint`` evaluates a camlkit or
released checkpoint instead. Only prediction is timed (the metrics are the same code for both).
On a shared machine the figures are contended: compare them within one run.
"""

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from camlkit.caml import CAMLNet
from camlkit.course import find_data_dir
from camlkit.data import case_path, read_case, read_list
from camlkit.evaluation.inference import PATCH_SIZE, STRIDE, sliding_window_predict
from camlkit.losses import dice_loss
from camlkit.runtime.trained import load_trained

TIE = 1e-5  # a label may differ only where the release's probability is this close to 0.5


# ----------------------------------------------------------------------------- the release's way

def release_predict(net, image, patch_size, stride_xy, stride_z, num_classes=2):
    """One window per forward pass, NumPy accumulation: the released evaluation's logic."""
    w, h, d = image.shape
    pads = [max(p - s, 0) for s, p in zip(image.shape, patch_size)]
    pads = [(q // 2, q - q // 2) for q in pads]
    image = np.pad(image, pads, mode="constant", constant_values=0)
    ww, hh, dd = image.shape
    sx = math.ceil((ww - patch_size[0]) / stride_xy) + 1
    sy = math.ceil((hh - patch_size[1]) / stride_xy) + 1
    sz = math.ceil((dd - patch_size[2]) / stride_z) + 1
    score_map = np.zeros((num_classes,) + image.shape, dtype=np.float32)
    cnt = np.zeros(image.shape, dtype=np.float32)
    for x in range(sx):
        xs = min(stride_xy * x, ww - patch_size[0])
        for y in range(sy):
            ys = min(stride_xy * y, hh - patch_size[1])
            for z in range(sz):
                zs = min(stride_z * z, dd - patch_size[2])
                window = (slice(xs, xs + patch_size[0]), slice(ys, ys + patch_size[1]),
                          slice(zs, zs + patch_size[2]))
                patch = torch.from_numpy(image[window][None, None].astype(np.float32))
                with torch.no_grad():
                    prob = F.softmax(net(patch), dim=1).cpu().numpy()[0]
                score_map[(slice(None),) + window] += prob
                cnt[window] += 1
    score_map = score_map / cnt[None]
    (wl, _), (hl, _), (dl, _) = pads
    score_map = score_map[:, wl:wl + w, hl:hl + h, dl:dl + d]
    return np.argmax(score_map, axis=0).astype(np.uint8), score_map


# ----------------------------------------------------------------------------- weights

def random_net():
    torch.manual_seed(0)
    return CAMLNet().eval()


def briefly_trained_net(data, steps, patch=(64, 64, 48), batch=2):
    """The random network after a few Adam steps of f_v on labeled LA crops: confident,
    trained-looking output from the branch the protocol evaluates."""
    net = random_net()
    f_v = net.f_v.train()
    cases = [read_case(case_path(data, c)) for c in read_list(Path(data) / "train.list")[:batch]]
    optimizer = torch.optim.Adam(f_v.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        images, labels = [], []
        for image, label in cases:
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(image.shape, patch)]
            crop = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            images.append(torch.from_numpy(image[crop].copy()))
            labels.append(torch.from_numpy(label[crop].astype(np.int64)))
        x, y = torch.stack(images)[:, None], torch.stack(labels)
        logits = f_v(x)
        loss = F.cross_entropy(logits, y) + dice_loss(torch.softmax(logits, 1)[:, 1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


class FirstOutput(torch.nn.Module):
    """The release's evaluation of its CAML model: the whole network's forward on each window
    (f_v and f_a, encoders and decoders), of which ``test_single_case_first_output`` keeps the
    first output, f_v's logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["logits_v"]


# ----------------------------------------------------------------------------- comparison

def label_check(release_label, release_prob, camlkit_label):
    """(voxels that differ, of which not near-ties): the second must be 0."""
    differ = release_label != camlkit_label
    tie = np.abs(release_prob[1] - 0.5) <= TIE
    return int(differ.sum()), int((differ & ~tie).sum())


def compare_case(net, image, repeat, batch_size, network="caml", patch=PATCH_SIZE, stride=STRIDE):
    """Best seconds of each way (interleaved runs), and the label check of the last pair.

    net: a CAMLNet in eval mode; the release runs ``FirstOutput(net)`` (``network="caml"``) or
    ``net.f_v`` (``"vnet"``), camlkit runs ``net.f_v``."""
    f_v = net.f_v
    net = FirstOutput(net) if network == "caml" else f_v
    release_s, camlkit_s = [], []
    stride_xy, stride_z = stride[0], stride[2]
    with torch.no_grad():  # warm-up: one window each way
        net(torch.zeros(1, 1, *patch))
        sliding_window_predict(f_v, np.zeros(patch, np.float32), patch, stride, batch_size)
    for _ in range(repeat):
        t0 = time.perf_counter()
        r_label, r_prob = release_predict(net, image, patch, stride_xy, stride_z)
        release_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c_label, c_prob = sliding_window_predict(f_v, image, patch, stride, batch_size)
        camlkit_s.append(time.perf_counter() - t0)
    differ, bad = label_check(r_label, r_prob, c_label)
    near = float(np.mean(np.abs(r_prob[1] - 0.5) < 0.01))
    return {"release": min(release_s), "camlkit": min(camlkit_s), "differ": differ, "bad": bad,
            "max_dp": float(np.abs(r_prob - c_prob).max()), "near_half": near,
            "foreground": float(r_label.mean())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="LA folder (default: camlkit.course.find_data_dir)")
    parser.add_argument("--cases", type=int, default=1, help="first K cases of test.list")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each way per case (best kept)")
    parser.add_argument("--batch-size", type=int, default=4, help="camlkit's windows per forward pass")
    parser.add_argument("--weights", nargs="+", default=["random", "trained"], choices=["random", "trained"])
    parser.add_argument("--train-steps", type=int, default=12, help="Adam steps of the 'trained' weights")
    parser.add_argument("--checkpoint", help="a camlkit or authors' checkpoint to evaluate instead of --weights")
    parser.add_argument("--network", choices=["caml", "vnet"], default="caml",
                        help="what the release's loop runs per window: the whole CAML network as its "
                             "test_3d.py does (default), or f_v alone")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    args.data = find_data_dir(args.data)
    cases = read_list(Path(args.data) / "test.list")[: args.cases]
    nets = {"checkpoint": lambda: load_trained(args.checkpoint)[0]} if args.checkpoint else {
        "random": random_net, "trained": lambda: briefly_trained_net(args.data, args.train_steps)}
    chosen = ["checkpoint"] if args.checkpoint else args.weights
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, patch {PATCH_SIZE}, stride {STRIDE}, "
          f"camlkit batch {args.batch_size}, best of {args.repeat}; the release's loop runs "
          f"{'the whole CAML network per window' if args.network == 'caml' else 'f_v alone'}; "
          "a shared machine: figures are contended")
    print("| case | weights | shape | release s | camlkit s | speed-up | labels differ (not ties) "
          "| max abs dp | p within 0.01 of 0.5 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    failures, speedups = 0, []
    for name in chosen:
        net = nets[name]()
        for case in cases:
            image, _ = read_case(case_path(args.data, case))
            row = compare_case(net, image, args.repeat, args.batch_size, args.network)
            speedups.append(row["release"] / row["camlkit"])
            failures += row["bad"] > 0
            print(f"| {case[:8]} | {name} | {image.shape} | {row['release']:.1f} | {row['camlkit']:.1f} "
                  f"| x{speedups[-1]:.2f} | {row['differ']} ({row['bad']}) | {row['max_dp']:.1e} "
                  f"| {100 * row['near_half']:.1f} % |", flush=True)
    print(f"speed-up: median x{statistics.median(speedups):.2f}; label check "
          f"{'PASSED' if not failures else 'FAILED'} (labels may differ only where the release's p is "
          f"within {TIE:g} of 0.5)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
