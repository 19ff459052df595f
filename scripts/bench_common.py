"""Helpers shared by the benchmark comparison scripts (imported from the scripts folder)."""

import platform
import sys


def log(*a):
    """Progress on stderr, so stdout stays the report."""
    print(*a, file=sys.stderr, flush=True)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
