"""camlkit's benchmarks and studies: scripts, not part of the installed package.

Run each from the repository root as a module, e.g. ``python -m bench.bench_train --preset quick``,
so that one script imports another's helpers as ``bench.<name>`` (``bench.inputs``: the synthetic
inputs they share; ``bench.release_step`` and ``bench.release_loop``: the release-equivalent step
and loop; ``bench.bench_evaluate``: the release's evaluation loop).

camlkit is imported here, before any script imports torch, so that a bench runs under the CPU
policy ``camlkit train`` runs under (camlkit.runtime.threads: the short OpenMP spin, every thread).
"""

import camlkit  # noqa: F401  (before torch: see above)
