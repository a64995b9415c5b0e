"""How camlkit's CPU threads wait, so that a shared laptop stays usable.

PyTorch runs its CPU kernels on OpenMP threads. When a thread finishes its share of an operation
early it waits for the others, and GNU OpenMP (libgomp, which the PyTorch wheels ship) lets it
*spin* — burn its core — for up to ``GOMP_SPINCOUNT`` iterations (300,000 by default, a few
milliseconds) before it sleeps; Intel's OpenMP spins for ``KMP_BLOCKTIME`` (200 ms). Alone, spinning
saves the wake-up of the next operation. Beside another busy process it is a disaster: the spinning
thread takes the core that the other process, or our own thread that still has work, needs.
(Measured on 2 cores, ``python -m bench.bench_train --preset quick --beside-busy``.)

``share_cpu()`` sets a short spin: long enough to bridge the gap between two consecutive
operations of a training step (so the run-alone speed stays), short enough that a waiting thread
gives its core away within a fraction of a millisecond. Measured on the project's 2-core machine,
otherwise quiet (``python -m bench.bench_train --preset quick --method caml --iterations 20
--beside-busy --rounds 2 --try OMP_WAIT_POLICY=PASSIVE``, s/it alone -> beside one busy
single-threaded process, two rounds):

* PyTorch's defaults: 0.682 -> 3.262 (x4.78) and 0.692 -> 4.917 (x7.11);
* this policy: 0.676 -> 1.292 (x1.91) and 0.685 -> 1.309 (x1.91) — no slower alone;
* ``OMP_WAIT_POLICY=PASSIVE`` (no spin at all): 0.704 -> 1.284 (x1.82), 3 % slower alone.

With one of the two cores taken, x2 is the fair share for a step that keeps two threads busy.

**A fair share while training** (:class:`ThreadShare`, what ``camlkit train`` does on the CPU):
a step cannot come closer than x2 while it keeps two threads on two cores one of which another
process holds. So the training loop looks, every :data:`SHARE_EVERY` seconds, at how many CPUs
*other* processes kept busy since its last look (the busy time ``/proc/stat`` counts for the
CPUs this process may use, less this process's own CPU time: :func:`busy_others`) and runs on
the CPUs they leave free, rounded to the nearest, at least one thread and never more than it
started with (:func:`threads_for`: on 2 CPUs, others busy 1.0 -> 1 thread, 0.1 -> 2). When the
other process ends, the next look gives the threads back. A look costs one read of
``/proc/stat`` (43 us on 2026-12-07, the project's 2-core x86_64 CPU; it is read after every
iteration, a decision made every 2 s). It does nothing where the user chose the count
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), with ``--no-share-threads`` (the config's
``share_threads``), on a GPU, or without ``/proc/stat``. The processes a run starts itself
(DataLoader workers, ``num_workers`` > 0) count as others.

The price: a step on 1 thread and on 2 does not give the same bits (a quick CAML step on the
same inputs: parameters after three steps differ by up to 0.04, on 2026-12-07, the project's
2-core x86_64 CPU: the order of floating-point sums depends on the threads). A run that must be
repeated or resumed bit-identically needs a fixed thread count: ``OMP_NUM_THREADS=1`` (as the
tests run) or ``--no-share-threads``.

Measured on 2026-12-07, the project's 2-core x86_64 CPU, each command under the project's bench
lock but beside other engineers' untimed work (load average 2-5; raw output in
``results/cpu_share/``): the quick CAML step alone 1.148 s/it on 1 thread, 0.676 on 2 (x1.70),
so a step confined to the one free core cannot come closer than about x1.7 to its 2-thread speed
alone, and the issue's x1.5 is out of reach on 2 cores. ``python -m bench.bench_train --preset
quick --method caml --iterations 12 --beside-busy --rounds 2 --only wait --nice 5``, s/it alone
-> beside one busy single-threaded torch process, and how much slower that process ran beside
the training (its products/s alone / beside):

* PyTorch's defaults (``--iterations 4``): 0.755 -> 2.001 (x2.65) and 0.727 -> 2.012 (x2.77),
  the busy process x1.46-1.48 slower; under a heavier load earlier, 0.743 -> 11.873 (x16.0),
  busy x4.30;
* the short spin alone: 0.701 -> 1.880 (x2.68) and 0.739 -> 1.943 (x2.63), busy x1.08-1.11;
* the short spin and the fair share (1 thread from 2.3-2.5 s on): 0.779 -> 2.224 (x2.85, busy
  x1.98: outside work in that window slowed both) and 1.127 -> 1.205 (the rule had taken one
  thread alone too, the machine being busy; x1.78 against the 2-thread step's 0.676);
* the same at nice 5: 0.676 -> 1.095 (x1.62) and 0.656 -> 1.102 (x1.68), busy x1.01-1.04.

So the fair share brings the step beside a busy process to its 1-thread speed (1.10-1.21 s/it,
x1.6-1.8 of the 2-thread step alone, against x2.6-2.8 without it) and leaves the busy process
its core (x1.01-1.04 slower, against x1.1 with the short spin alone and x1.5 with PyTorch's
defaults). A lower priority for the training (nice 5) made no difference that these rounds can
tell apart from the noise: camlkit leaves the priority as it is. Under a heavier outside load
(same command, ``--only "wait policy"``, the same day), beside the busy process: the short spin
alone 3.161 and 3.596 s/it (busy x2.46, x3.04 slower), with the fair share 1.357 and 2.154 s/it
(busy x1.52, x1.21).

Who applies it (``import camlkit`` itself changes nothing), and what it can do there:

* the command line and a launched run (camlkit.cli.main, which camlkit.lab.process's child runs
  too) call :func:`share_cpu` before their commands load torch: the short spin above, in this
  process and every process it starts.
* a notebook kernel (camlkit.course.share_cpu, and camlkit.lab.runs.train_short before it
  trains) has imported torch first: libgomp read ``GOMP_SPINCOUNT`` and ``OMP_WAIT_POLICY`` when
  torch loaded it, and offers no call to change how its threads wait afterwards (Intel's runtime
  has ``kmp_set_blocktime``; PyTorch's wheels ship libgomp), so the threads of *this* process
  keep libgomp's long default spin. What can still be set is how many of them there are:
  :func:`spare_a_cpu` leaves one CPU free (``torch.set_num_threads``, one thread fewer than the
  CPUs this process may use, at least one), so that a spinning thread cannot take the last core
  another process needs; on 2 cores that is one thread, which never waits for another. The
  cost: up to one thread's share of speed when the machine is quiet (not measured). The runs it
  launches (camlkit.lab.launch) set the short spin themselves, as every command line does.

A setting the user already made is left alone: any of :data:`WAIT_SETTINGS` (how threads
wait), and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (how many there are).
"""

import math
import os
import sys
import time
from dataclasses import dataclass

SPIN_COUNT = "10000"  # libgomp spins of a waiting thread before it sleeps (default 300000)
BLOCK_TIME = "1"  # ms, the same for Intel's OpenMP runtime (default 200)

# the variables that decide how an OpenMP thread waits; if any is set, the user has chosen
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
# the variables that decide how many threads torch uses; if any is set, the user has chosen
THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def share_cpu(environ=None):
    """Make OpenMP threads wait politely. Returns the settings it made ({} if the user chose).

    ``environ``: the environment to change (default ``os.environ``: this process and the
    processes it starts; a dict for a child process). The settings reach this process's OpenMP
    only if torch is not imported yet; if it is, :func:`spare_a_cpu` does what can still be done
    (see the module docstring).
    """
    own = environ is None
    environ = os.environ if own else environ
    if any(name in environ for name in WAIT_SETTINGS):
        return {}
    made = {"GOMP_SPINCOUNT": SPIN_COUNT, "KMP_BLOCKTIME": BLOCK_TIME}
    environ.update(made)
    if own and "torch" in sys.modules:  # too late for this process: its OpenMP spins long
        spare_a_cpu()
    return made


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def spare_a_cpu():
    """Leave one CPU free of torch's threads: at most ``usable_cpus() - 1`` of them, at least one.
    Returns the thread count set, or None when the user chose it (``OMP_NUM_THREADS``,
    ``MKL_NUM_THREADS``). Never raises the count."""
    import torch

    if any(name in os.environ for name in THREAD_SETTINGS):
        return None
    threads = max(1, min(torch.get_num_threads(), usable_cpus() - 1))
    torch.set_num_threads(threads)
    return threads


# ----------------------------------------------------------------------------- a fair share while training

SHARE_EVERY = 2.0  # seconds between two looks at what the other processes use


def threads_for(cpus: int, busy_others: float) -> int:
    """The rule: as many threads as the CPUs that other processes leave free, rounded to the
    nearest, at least one and at most ``cpus``.

    ``cpus``: the CPUs this process may use (or the most threads it was started with);
    ``busy_others``: how many of them other processes kept busy lately, on average (0.0 to
    ``cpus``). On 2 CPUs: others busy 1.0 -> 1 thread, 0.6 -> 1, 0.4 -> 2, 0.1 -> 2.
    """
    return max(1, min(cpus, math.floor(cpus - busy_others + 0.5)))


@dataclass(frozen=True)
class CpuSample:
    """One look at the CPUs, all in seconds: ``wall`` (a monotonic clock), ``busy`` (the time
    the CPUs this process may use spent on any process's work since boot) and ``own`` (this
    process's CPU time, all its threads)."""
    wall: float
    busy: float
    own: float


def busy_others(before: CpuSample, after: CpuSample) -> float:
    """How many CPUs other processes kept busy between two samples, on average (never below 0):
    the busy time of the CPUs less this process's own, over the wall time between them."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    return max(0.0, (after.busy - before.busy) - (after.own - before.own)) / wall


def read_cpu_sample(stat="/proc/stat") -> CpuSample | None:
    """A :class:`CpuSample` of now, from Linux's ``/proc/stat`` (the ``cpuN`` lines of the CPUs
    in this process's affinity mask: user, nice, system, irq, softirq and steal count as busy;
    idle and iowait do not); None where there is no such file."""
    try:
        with open(stat) as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    mine = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or (mine is not None and int(name[3:]) not in mine):
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        ticks += user + nice + system + irq + softirq + steal
    return CpuSample(time.monotonic(), ticks / os.sysconf("SC_CLK_TCK"), time.process_time())


class ThreadShare:
    """The rule (:func:`threads_for`) applied during a training run: every ``every`` seconds it
    looks at what the other processes used since the last look (:func:`busy_others`) and sets
    the thread count to the CPUs they left free, never more than ``threads``, the count the run
    started with. The training loop calls :meth:`poll` once per iteration; a look costs one read
    of ``/proc/stat``.

    ``set_threads``: the function that sets the count (``torch.set_num_threads`` in training);
    ``sample``: where the looks come from (:func:`read_cpu_sample`; a test passes fake ones).
    """

    def __init__(self, threads: int, set_threads, sample=read_cpu_sample, every: float = SHARE_EVERY):
        self.most, self.threads, self.set_threads = threads, threads, set_threads
        self.sample, self.every = sample, every
        self.last = sample()
        self.start = self.last.wall if self.last is not None else 0.0
        self.changes = []  # (seconds since the start, threads) at each change

    def poll(self) -> int:
        """Look again if ``every`` seconds have passed; set and return the thread count."""
        now = self.sample()
        if now is None or self.last is None or now.wall - self.last.wall < self.every:
            return self.threads
        threads = threads_for(self.most, busy_others(self.last, now))
        if threads != self.threads:
            self.set_threads(threads)
            self.threads = threads
            self.changes.append((now.wall - self.start, threads))
        self.last = now
        return self.threads


def thread_share(wanted: bool, device_type: str, threads: int, set_threads, environ=None) -> ThreadShare | None:
    """The :class:`ThreadShare` of a training run, or None where the rule does not apply: the
    config turned it off (``wanted`` False: ``--no-share-threads``), the run is not on the CPU,
    the user fixed the thread count (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``), or there is one
    thread anyway."""
    environ = os.environ if environ is None else environ
    if not wanted or device_type != "cpu" or threads < 2 or any(name in environ for name in THREAD_SETTINGS):
        return None
    return ThreadShare(threads, set_threads)
