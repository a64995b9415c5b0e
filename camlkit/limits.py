"""When a limit of the machine is reached: memory, or the file-size limit (``ulimit -f``).

How each shows up in Python:

- out of memory: ``MemoryError`` (numpy's ``_ArrayMemoryError`` is one), torch's
  ``RuntimeError: ... DefaultCPUAllocator: can't allocate memory ...`` on the CPU, or
  ``torch.OutOfMemoryError`` (a RuntimeError too) on a GPU;
- a write past ``ulimit -f``: ``OSError`` EFBIG, "File too large" (the kernel first sends
  SIGXFSZ, which would end the process, but Python ignores that signal from its start-up).

:func:`limit_reached` says which limit an exception means. The places that know what was kept
turn it into one line that says so (a run's checkpoints:
camlkit.runtime.resume.checkpoint_write_limits_as_one_line; its final evaluation:
camlkit.evaluation.final_eval; a predicted mask: camlkit.data.volumes), and camlkit.cli.main turns any
other into one line too, instead of a traceback.
"""

import errno


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` means an allocation failed (host or GPU memory)."""
    if isinstance(err, MemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        type(err).__name__ == "OutOfMemoryError" or "DefaultCPUAllocator" in text
        or "can't allocate memory" in text or "CUDA out of memory" in text)


def file_too_large(err: BaseException) -> bool:
    """Whether ``err`` is a write refused by the file-size limit (EFBIG)."""
    return isinstance(err, OSError) and err.errno == errno.EFBIG


def limit_reached(err: BaseException) -> str | None:
    """"out of memory (<what failed>)" or "the file-size limit ... was reached", else None."""
    if out_of_memory(err):
        return f"out of memory ({_detail(err)})"
    if file_too_large(err):
        return "the file-size limit (ulimit -f) was reached"
    return None


def _detail(err):
    """The informative part of an allocation error, on one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    if "DefaultCPUAllocator" in text:  # drop torch's "[enforce fail at alloc_cpu.cpp:127] err == 0."
        text = text[text.index("DefaultCPUAllocator"):]
    return text[:200]
