"""What a training run is asked to do, and the settings fixed for its life.

* ``TrainConfig``: everything ``python dcgan.py`` takes, as one frozen dataclass, so
  that tests, the notebook and the benchmarks train with ``training.train(config)``
  and no command line. Its run settings (image size, noise, width, ...) are None when
  not asked for: a new run then takes ``RunSettings``' defaults, a resumed one its
  checkpoint's.
* ``RunSettings``: the resolved settings of one run, saved in every checkpoint's
  ``state.json`` under "settings" (the same keys, in this order).
* ``IMAGE_SIZES`` and ``check_image_size``: the sides the networks are built for.

It reads no files and builds nothing (runs.py keeps the run folder, training.py trains).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from augment import AUTO_POLICY
from augment import resolve as resolve_policy
from cli import UsageError

IMAGE_SIZES = (32, 64, 128)  # 4x4 doubled 3, 4 or 5 times
LOSSES = ("bce", "hinge")
ON_DIVERGENCE = ("stop", "rollback")
ENGINES = ("keras", "compiled")
# mixed_bfloat16: layers compute in bfloat16, weights and losses stay float32.
# float16 is left out: it needs loss scaling, which two optimizers shared by the
# stacked models would each wrap on their own (bfloat16 has float32's range).
PRECISIONS = ("float32", "mixed_bfloat16")
MAX_ROLLBACKS = 3
# Past these the networks or a batch do not fit in memory (24 GB); refused by the flags.
MAX_BATCH, MAX_NOISE, MAX_WIDTH = 4096, 1024, 256
MAX_STEPS_PER_CALL = 1000  # a call's draws are held on the device at once


def check_image_size(image_size: int) -> int:
    if image_size not in IMAGE_SIZES:
        raise UsageError(f"--image-size {image_size} is not supported; use 32, 64 or 128")
    return image_size


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The settings of one run. All but the learning rates and the data are fixed for
    its life (``FIXED``); ``data`` is the resolved data root it trains on, pinned by
    its fingerprint (training.py refuses to resume on other data)."""

    image_size: int = 64
    noise_dim: int = 64
    width: int = 32
    loss: str = "bce"
    batch_size: int = 64
    beta1: float = 0.5
    seed: int = 0
    augment: str = AUTO_POLICY["photos"]  # DiffAugment policy (augment.py); "" = none
    augment_p: float = 1.0  # probability of each operation of the policy, per image
    ema_kimg: float = 10.0  # half-life of the generator average, thousands of images; 0 = none
    cond_bn: bool = True  # attribute-conditioned batch normalisation in G (docs/results.md)
    spectral_norm: bool = False  # spectral normalisation of D's layers
    mode_seeking: float = 0.3  # weight of G's mode-seeking term (models.ModeSeeking); 0 = none
    attr_weight: float = 4.0  # weight of the attribute head's loss in both networks' steps
    precision: str = "float32"  # Keras dtype policy the networks compute in (PRECISIONS)
    conditional: bool = True  # False: --attributes none, both networks blind to attributes
    lr_d: float = 5e-4
    lr_g: float = 5e-4
    data: str | None = None
    data_fingerprint: str | None = None  # dataset.data_fingerprint of ``data``

    FIXED = (
        "image_size",
        "noise_dim",
        "width",
        "loss",
        "batch_size",
        "beta1",
        "seed",
        "augment",
        "augment_p",
        "ema_kimg",
        "cond_bn",
        "spectral_norm",
        "mode_seeking",
        "attr_weight",
        "precision",
        "conditional",
    )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


DEFAULTS = RunSettings()


def _flag(key: str, value) -> str:
    """A setting as the command-line flag that asks for it."""
    if key == "conditional":
        return "attributes" if value else "--attributes none"
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else "--no-" + flag[2:]
    return f"{flag} {value if value != '' else 'none'}"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One ``dcgan.py`` training command. None for a run setting means "the
    checkpoint's when resuming, else the default"; ``lr`` given on resume applies from
    there on."""

    out: Path = Path("runs/dcgan")
    data_dir: str | None = None
    epochs: int | None = None  # total to train to; None: 1, or as many as ``minutes`` allows
    minutes: float | None = None
    steps_per_epoch: int | None = None
    resume: bool = False
    keep: int = 3
    eval_every: int = 0
    on_divergence: str = "stop"
    engine: str | None = None  # "keras" or "compiled"; None: compiled on JAX, else keras
    steps_per_call: int = 16  # the compiled engine's steps per call (compiled_step.py)
    devices: str | int | None = None  # a count or "all"; None: 1, or all of several processes
    coordinator: str | None = None  # host:port of process 0, for several processes
    num_processes: int | None = None
    process_id: int | None = None
    image_size: int | None = None
    noise_dim: int | None = None
    width: int | None = None
    loss: str | None = None
    batch_size: int | None = None
    beta1: float | None = None
    seed: int | None = None
    augment: str | None = None  # a policy or "auto"; None: auto, or the checkpoint's
    augment_p: float | None = None
    ema_kimg: float | None = None
    cond_bn: bool | None = None
    spectral_norm: bool | None = None
    mode_seeking: float | None = None
    attr_weight: float | None = None
    precision: str | None = None
    conditional: bool | None = None
    lr: float | None = None  # both learning rates, where lr_d or lr_g is not given
    lr_d: float | None = None
    lr_g: float | None = None

    def settings(
        self, synthetic: bool, saved: dict | None = None, checkpoint: Path | None = None
    ) -> RunSettings:
        """The run's settings: a new run's from this config and the defaults; a resumed
        run's from its checkpoint's ``saved`` settings, where a value asked for that
        differs is an error naming both (only the learning rates may change). ``saved``
        is as schemas.STATE reads it: every key there, older versions' filled in.
        ``synthetic``: whether the run trains on the built-in synthetic faces, which
        ``--augment auto`` goes by."""
        chosen = {}
        for key in RunSettings.FIXED:
            asked = getattr(self, key)
            if key == "augment" and (asked is not None or saved is None):
                asked = resolve_policy(asked, synthetic)
            if saved is None:
                chosen[key] = getattr(DEFAULTS, key) if asked is None else asked
                continue
            was = saved[key]
            if asked is not None and asked != was:
                raise UsageError(
                    f"{checkpoint} was trained with {_flag(key, was)}, not {_flag(key, asked)}"
                    f"; pass {_flag(key, was)} or a new --out"
                )
            chosen[key] = was
        for key in ("lr_d", "lr_g"):
            before = saved[key] if saved else getattr(DEFAULTS, key)
            chosen[key] = getattr(self, key) or self.lr or before
        return RunSettings(**chosen)
