"""Running and keeping runs: checkpoints (checkpoint, the authors' files in released, their
download in weights), a trained network and how it was trained (trained: its inputs record,
load_inference_model), exact resume (resume), the run log (runlog), checks before a run
(preflight), device and the CPU-sharing policy (device, threads), DDP (distributed) and run
folders (runfolder). Above it: evaluation, viz, train; the notebook-facing room is camlkit.lab.
Import each module by name.
"""
