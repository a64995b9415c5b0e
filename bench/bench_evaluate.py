"""Time the paper's evaluation protocol on CPU: seconds per LA test case, and peak memory.

    python bench/bench_evaluate.py [--data LA_DIR] [--cases 1] [--batch-size 4] [--threads N]

Standard V-Net (16 filters, random weights: timing does not depend on them), sliding window
112x112x80 with stride 18/18/4, on the first test cases; metrics included.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camlkit import VNet  # noqa: E402
from camlkit.course import find_data_dir  # noqa: E402
from camlkit.data import case_path, read_case, read_list  # noqa: E402
from camlkit.evaluate import evaluate_cases  # noqa: E402
from camlkit.inference import PATCH_SIZE, STRIDE, sliding_windows, pad_widths  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None,
                        help="LA folder (default: $CAMLKIT_DATA, else data/LA, else ../shared/LA)")
    parser.add_argument("--cases", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    args.data = find_data_dir(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = [case_path(args.data, c) for c in read_list(Path(args.data) / "test.list")[: args.cases]]
    torch.manual_seed(0)
    model = VNet().eval()
    for path in paths:
        image, _ = read_case(path)
        padded = [s + a + b for s, (a, b) in zip(image.shape, pad_widths(image.shape, PATCH_SIZE))]
        print(f"{path.parent.name}: shape {image.shape}, {len(sliding_windows(padded, PATCH_SIZE, STRIDE))} windows")

    start = time.perf_counter()
    rows = evaluate_cases(model, paths, PATCH_SIZE, STRIDE, batch_size=args.batch_size, progress=False)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"{len(rows)} case(s), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}: {seconds / len(rows):.1f} s per case, peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
