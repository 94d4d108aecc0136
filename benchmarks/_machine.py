"""What every benchmark records about the machine it ran on."""

import importlib.metadata as metadata
import os
import platform


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(*dists):
    """Platform, CPU, load and package versions (numpy, tensorflow, keras and
    the distributions named in `dists`, keyed with `-` written `_`)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }
    for dist in ("numpy", "tensorflow", "keras") + dists:
        info[dist.replace("-", "_")] = _version(dist)
    return info
