"""Which devices, and how many processes, a run trains on: ``dcgan.py --devices``.

Data parallelism through ``keras.distribution``: a ``DataParallel`` distribution over
the chosen devices lays out the compiled step's inputs (every step's batch split along
its batch axis) and its weights (replicated); XLA turns the one-device step into the
many-device one, so BatchNorm's statistics, the minibatch-deviation groups and the
losses are over the global batch, as on one device. Several processes (hosts) join
through ``keras.distribution.initialize`` (``--coordinator``, ``--num-processes``,
``--process-id``, or the ``KERAS_DISTRIBUTION_*`` variables it reads); every process
draws the whole global batch from the run's seeded generators and feeds its own
devices' share, and only process 0 writes the run folder (``is_chief``).

JAX only: TensorFlow and PyTorch run the one-device Keras engine (README, "Engines
and many devices"). The step itself is compiled_step.py's.
"""

from __future__ import annotations

import os

from cli import UsageError
from quiet_keras import keras

ALL = "all"
ENVIRONMENT = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """Join a multi-process run when one is asked for, by flags or by the environment;
    before any computation on the devices (jax.distributed's rule)."""
    asked = (coordinator, num_processes, process_id)
    if all(value is None for value in asked) and not any(v in os.environ for v in ENVIRONMENT):
        return
    if keras.backend.backend() != "jax":
        raise UsageError(
            f"several processes train on the JAX backend only (this is "
            f"{keras.backend.backend()}): set KERAS_BACKEND=jax"
        )
    keras.distribution.initialize(coordinator, num_processes, process_id)


def process_count() -> int:
    return _jax_processes()[0]


def is_chief() -> bool:
    """Whether this process writes the run folder: process 0, or the only one."""
    return _jax_processes()[1] == 0


def _jax_processes() -> tuple[int, int]:
    """(processes, this one's index): (1, 0) off JAX."""
    if keras.backend.backend() != "jax":
        return 1, 0
    import jax

    return jax.process_count(), jax.process_index()


def data_parallel(devices: str | int, batch_size: int) -> keras.distribution.DataParallel:
    """The distribution over ``devices`` (a count, or ``all`` of every process's) that
    splits a batch of ``batch_size`` evenly."""
    import jax

    every = jax.devices()
    if jax.process_count() > 1 and devices not in (ALL, len(every)):
        raise UsageError(
            f"--devices {devices}: a run of {jax.process_count()} processes trains on all "
            f"{len(every)} of their devices; pass --devices all"
        )
    count = len(every) if devices == ALL else devices
    if count > len(every):
        raise UsageError(
            f"--devices {count}: this machine has {len(every)} {every[0].platform} "
            f"device{'s' * (len(every) > 1)}; pass --devices {len(every)} or all"
        )
    if batch_size % count:
        raise UsageError(
            f"--batch-size {batch_size} does not split evenly over {count} devices; use a "
            f"multiple of {count}"
        )
    return keras.distribution.DataParallel(devices=every[:count])
