"""The machine a number was measured on: its processor and, where TensorFlow sees one, its GPU.

Wall times are only comparable on one machine (a RAVDESS epoch took 37-61 s on the Intel machines of study v2's
first pieces and 128 s on an AMD EPYC without AVX-512), so training and attack runs carry ``device`` as a tag and
the exported ``models.csv`` carries it per model.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name() -> str:
    """``GPU: <name>`` where TensorFlow sees a GPU, else ``CPU: <model> (<n> cores)``."""
    import tensorflow as tf
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"
