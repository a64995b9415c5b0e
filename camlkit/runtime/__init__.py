"""Running and keeping runs: checkpoints (checkpoint, the authors' files in released, their
download in weights), exact resume (resume), the run log (runlog), checks before a run
(preflight), device and CPU threads (device, threads), safe files (files) and run folders
(runfolder), a run as a process of its own (launch, process) watched live (watch), finding and
loading trained networks (runs, trained) and resource limits (limits). Import each module by name.
"""
