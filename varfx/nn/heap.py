"""The C heap of a process that runs a network on a CPU: keep what a forward frees.

A network's forward allocates and frees tensors of a few MB to a few hundred MB per
layer, the same sizes at every step (a training step) or every piece (score-vcf).  By
default glibc's malloc maps each block over its mmap threshold fresh from the kernel and
returns free memory above its trim threshold at the heap's top after the free, so the
next step page-faults the same pages in anew: tens of thousands of faults a step, a
third of seqcnn scoring's CPU time in system time and ~10% of a transformer step
(docs/benchmarks.md).  Fixing the mmap threshold at glibc's largest (32 MiB) and keeping
free memory at the top makes the steady state fault-free; the heap then stays at the
peak working set of one step, which does not grow with the input.  It is the process's
allocator setting, not any network's arithmetic: the process keeps its peak heap until
it exits.  Only glibc (Linux); elsewhere nothing is done.
"""

from __future__ import annotations

import sys

#: glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: glibc's largest mmap threshold on 64-bit systems: larger blocks are still mapped
MMAP_THRESHOLD = 32 << 20

_trim_set = 0  # the largest trim threshold set in this process (0: none)


def keep_freed_memory(trim_bytes: int) -> bool:
    """Keep up to ``trim_bytes`` of freed memory at the heap's top, and blocks up to
    32 MiB on the heap, for the next allocations of this process.  Returns whether the
    setting is in force (False: not glibc).  A second call with no larger
    ``trim_bytes`` does nothing (callers ask once per step)."""
    global _trim_set
    if _trim_set >= trim_bytes:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (the parameter numbers are glibc's)
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, int(trim_bytes)))
    except (OSError, AttributeError):
        return False
    if ok:
        _trim_set = int(trim_bytes)
    return ok
