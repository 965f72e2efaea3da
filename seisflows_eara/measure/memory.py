"""Keep freed memory in the measuring process (parameter `measure_keep_freed_memory`).

The measurement makes and frees many large temporary arrays (a block of traces to band-pass,
interpolate, correlate, rotate). glibc's malloc gives each array above its mmap threshold (128
kB at start, raised by itself to at most 32 MiB) fresh pages from the kernel and returns them on
free, and trims the top of the heap above 128 kB; every new array then pays the kernel's page
faults on first touch: 0.06 ms/MB on bare metal, 2-5 ms/MB measured on a cloud VM whose freed
pages go back to the host (README "Performance"). There a forward's measurement spent half its
time in page faults. Raising the mmap threshold to glibc's maximum and the trim threshold to
TRIM_THRESHOLD_BYTES makes freed arrays stay in the heap and be reused, already touched: the
process's resident memory stays at its peak (which is bounded per block, not per event) instead
of falling between blocks. Process-wide and glibc only (elsewhere nothing is changed); a forked
worker inherits it.
"""
from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX: 4 MiB × 8)
MMAP_THRESHOLD_MAX_BYTES = 32 * 1024 * 1024
#: freed memory at the top of the heap kept up to this size: mallopt's largest (an int, 2 GiB),
#: about one measuring process's peak at 2000 stations (README "Performance")
TRIM_THRESHOLD_BYTES = 2 ** 31 - 1

_applied: bool | None = None


def keep_freed_memory(enable: bool = True) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (module doc); once per process.
    Returns whether the settings are in effect (False: not glibc, or `enable` false)."""
    global _applied
    if not enable:
        return bool(_applied)
    if _applied is not None:
        return _applied
    _applied = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX_BYTES)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _applied


def numpy_huge_pages(enable: bool) -> bool:
    """Whether numpy asks the kernel for transparent huge pages for its large arrays
    (madvise(MADV_HUGEPAGE) on allocations of 4 MB and more: numpy's default, also set by the
    NUMPY_MADVISE_HUGEPAGE environment variable). Parameter `measure_huge_pages`. On a VM whose
    freed memory goes back to the host, every fresh huge page is backed by the host again:
    measured here 2.3 ms/MB against 0.43 ms/MB with ordinary pages (and 0.12 ms/MB reused), and
    a 1000-station forward spent 2.7 s of 22 copying window samples into such pages (0.5 s
    without). On bare metal huge pages save page faults. Process-wide; returns the previous
    setting (None where numpy has no such switch)."""
    try:
        from numpy.core.multiarray import _set_madvise_hugepage
    except ImportError:         # numpy 2
        try:
            from numpy._core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    return bool(_set_madvise_hugepage(bool(enable)))
