"""The memory a closed-form fit may use: the ``memory_budget`` parameter and its default.

A budget is a number of bytes. The user gives an int, a string with a unit (``"512MiB"``,
``"2 GB"``, ``"1.5GiB"``), or ``"auto"``: half the memory available when the fit starts (on
Linux ``MemAvailable`` of ``/proc/meminfo``, elsewhere half of the physical memory), or, on a
CUDA device, 80% of the device's free memory. An infinite amount (``float("inf")``, ``"inf"``,
or a string such as ``"1e400GB"`` whose number a float cannot hold) sets no limit. A fit
compares the budget with what its problem needs (:meth:`sharelearn.models.closed_form.
ClosedFormModel.memory_need`) before any work, and refuses with the figure when even the
leanest way of working does not fit; between the two, the search rates and scores its
candidates in blocks that fit (:class:`sharelearn.models.planning.MemoryPlan`).
"""

from __future__ import annotations

import math
import numbers
import os
import re

__all__ = ["format_bytes", "resolve_budget"]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def format_bytes(n):
    """``n`` bytes in the largest binary unit that keeps a number of at least 1."""
    try:
        n = float(n)
    except OverflowError:  # an int beyond floats: more than any machine holds
        n = math.inf
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}" if n < 10 * size else f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _available_host_memory():
    """Bytes of host memory available now (Linux), or the physical memory (elsewhere), or
    None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def _default_budget(device):
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    available = _available_host_memory()
    return None if available is None else available // 2


def _bytes(amount):
    """A positive amount of bytes as an int, None for an infinite one (no limit)."""
    return None if math.isinf(amount) else int(amount)


def resolve_budget(value, device):
    """The budget in bytes that ``memory_budget=value`` means on ``device`` (None: no limit,
    as for an infinite amount or on a machine that does not say how much memory it has)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return _default_budget(device)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value > 0:  # False for nan
            # an int as it is: a float cannot hold 10**400
            return int(value) if isinstance(value, numbers.Integral) else _bytes(float(value))
    elif isinstance(value, str):
        if value.strip().lower() in ("inf", "infinity"):
            return None
        match = _PATTERN.match(value)
        unit = match.group(2).upper() if match else None
        if match and unit in _UNITS and float(match.group(1)) > 0:
            # in floats: "1e400GB" is infinite, "1e300GB" too large for a float times 10**9
            return _bytes(float(match.group(1)) * float(_UNITS[unit]))
    raise ValueError(
        f"memory_budget must be 'auto', a positive number of bytes, or a string such as "
        f"'512MiB' or '2GB' (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB); an infinite amount "
        f"(float('inf') or 'inf') sets no limit. Got {value!r}.")
