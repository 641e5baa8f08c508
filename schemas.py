"""The shape of every file the program writes and reads back, and the one loader that
checks a file against its shape.

A JSON file is read with ``read_json(path, SCHEMA, error, fix)``: the file's content
as plain data (dicts, lists, numbers), checked field by field and with the values of
older versions filled in, or ``error`` (the calling module's own CommandError) in one
line naming the file, the first field that is wrong and ``fix`` (``parse_json`` says
what is wrong instead of raising). A numpy array read back is checked with
``array_problem``. The schemas:

* ``STATE``: a checkpoint's ``state.json`` (position, settings, backend);
* ``CHECKPOINT_MANIFEST``: a checkpoint's ``manifest.json`` (size and SHA-256 per file);
* ``CACHE_MANIFEST``: a data cache's ``manifest.json``;
* ``PHOTOS_MANIFEST``: the ``photos.json`` of a root made from photos (photos.py);
* ``REPORT``: the part of evaluate.py's ``report.json`` that other tools read back;
* ``QUALITY_REPORT``: the larger part of it that benchmarks/quality_ab.py tabulates;
* ``READY_CARD``: the shipped ready model's ``ready/synthetic.json`` (ready_model.py).

Which file lives where, and what a failure means (rebuild the cache, skip the
checkpoint), is the calling module's business; this module reads nothing by itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RootModel,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from augment import OPERATIONS
from cli import CommandError
from config import IMAGE_SIZES, LOSSES, PRECISIONS

# A file name inside one folder: no separators, no "..", nothing hidden.
FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_OPERATION = "(" + "|".join(OPERATIONS) + ")"
Policy = Annotated[str, Field(pattern=rf"^$|^{_OPERATION}(,{_OPERATION})*$")]


class _Shape(BaseModel):
    """JSON types as written (no "3" for 3, no 1 for true); unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Settings(_Shape):
    """``state.json`` "settings": config.RunSettings as saved, from any version; a
    setting newer than the checkpoint gets the value the run was trained with."""

    image_size: Literal[IMAGE_SIZES]
    noise_dim: PositiveInt
    width: PositiveInt
    loss: Literal[LOSSES]
    batch_size: Annotated[int, Field(gt=0, multiple_of=8)]
    beta1: Annotated[float, Field(ge=0, lt=1)]
    seed: Annotated[int, Field(ge=0, lt=2**32)]
    augment: Policy = ""
    augment_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    ema_kimg: NonNegativeFloat = 0.0
    cond_bn: bool = False
    spectral_norm: bool = False
    mode_seeking: NonNegativeFloat = 0.0
    attr_weight: NonNegativeFloat = 1.0
    precision: Literal[PRECISIONS] = "float32"
    conditional: bool = True
    lr_d: PositiveFloat | None = None
    lr_g: PositiveFloat | None = None
    lr: PositiveFloat | None = None  # before the two rates: one for both
    data: str | None = None
    data_fingerprint: str | None = None

    @model_validator(mode="after")
    def _two_rates(self) -> Settings:
        self.lr_d = self.lr_d or self.lr
        self.lr_g = self.lr_g or self.lr
        if self.lr_d is None or self.lr_g is None:
            raise ValueError("no learning rate (lr_d and lr_g, or lr)")
        return self


class _Read(BaseModel):
    """A part of a larger file: JSON types as written, other keys left alone."""

    model_config = ConfigDict(strict=True, extra="ignore")


class State(_Read):
    epoch: NonNegativeInt
    step: NonNegativeInt = 0
    settings: Settings
    seconds: NonNegativeFloat | None = None
    best: float | None = None
    backend: str
    keras: str


class FileEntry(_Shape):
    bytes: NonNegativeInt
    sha256: Sha256


class CheckpointManifest(RootModel[dict[FileName, FileEntry]]):
    pass


class Crop(_Shape):
    left: Annotated[float, Field(ge=0, lt=1)]
    top: Annotated[float, Field(ge=0, lt=1)]
    side: Annotated[float, Field(gt=0, le=1)]


Fraction = Annotated[float, Field(ge=0, le=1)]


class PhotosManifest(_Shape):
    version: PositiveInt
    key: Sha256
    source: str
    photos: PositiveInt
    faces: PositiveInt
    skipped: dict[str, NonNegativeInt]
    detector: str
    classifier: str | None  # None: unlabelled (every attribute absent), --attributes none
    classifier_sha256: Sha256 | None
    label_confidence: dict[str, Fraction]


class CacheManifest(_Shape):
    version: PositiveInt
    fingerprint: str
    data_fingerprint: str
    source: str
    layout: Literal["official", "kaggle"]
    attr_file: str
    header_count: NonNegativeInt | None
    image_size: Literal[IMAGE_SIZES]
    crop: Crop
    count: NonNegativeInt
    skipped: dict[str, NonNegativeInt]
    failed_images: list[str]
    build_seconds: NonNegativeFloat


class ReportSummary(_Read):
    generated_accuracy_visible: Fraction
    generated_balanced_visible: Fraction
    real_accuracy_visible: Fraction
    flip_rate: Fraction


class Report(_Read):
    epoch: NonNegativeInt
    summary: ReportSummary


class Frechet(_Read):
    generated: NonNegativeFloat
    real_baseline: PositiveFloat


class Kid(_Read):
    generated: float  # unbiased: a little below 0 when the sets match


class FeatureDistances(_Read):
    """One feature space's block of ``report.json`` "distances" (evaluate.distances)."""

    frechet: Frechet
    kid: Kid


class Distances(_Read):
    classifier: FeatureDistances
    fid_inception: FeatureDistances  # a report without standard FID does not fit


class QualitySummary(ReportSummary):
    diversity_generated_same_attributes: NonNegativeFloat
    diversity_real_random_pairs: PositiveFloat
    colour_noise_generated: NonNegativeFloat | None = None  # None: a report from before it
    colour_noise_real: PositiveFloat | None = None


class QualityReport(_Read):
    summary: QualitySummary
    distances: Distances


class ReadyCard(_Shape):
    settings: Settings
    epoch: PositiveInt
    command: Annotated[str, Field(min_length=1)]
    evaluation: ReportSummary
    weights_sha256: Sha256


STATE = TypeAdapter(State)
REPORT = TypeAdapter(Report)
QUALITY_REPORT = TypeAdapter(QualityReport)
READY_CARD = TypeAdapter(ReadyCard)
CHECKPOINT_MANIFEST = TypeAdapter(CheckpointManifest)
CACHE_MANIFEST = TypeAdapter(CacheManifest)
PHOTOS_MANIFEST = TypeAdapter(PhotosManifest)


def read_json(path: Path, schema: TypeAdapter, error: type[CommandError], fix: str) -> Any:
    """The content of the JSON file ``path`` checked against ``schema``, as plain data;
    ``error("PATH: <what is wrong>; FIX")`` when it cannot be read or does not fit."""
    data, problem = parse_json(path, schema)
    if problem is not None:
        raise error(f"{path}: {problem}; {fix}")
    return data


def parse_json(path: Path, schema: TypeAdapter) -> tuple[Any, str | None]:
    """(content, None) when ``path`` fits ``schema``, else (None, what is wrong)."""
    try:
        text = path.read_bytes()
    except OSError as why:
        return None, f"cannot read it ({why.strerror or why})"
    try:
        return schema.dump_python(schema.validate_json(text)), None
    except ValidationError as why:
        return None, describe(why)


def describe(error: ValidationError) -> str:
    """The first problem of a validation error in a few words: field and reason."""
    first = error.errors(include_url=False)[0]
    field = ".".join(
        part if isinstance(part, str) and re.fullmatch(r"[\w.-]+", part) else repr(part)
        for part in first["loc"]
    )
    reason = first["msg"].split("\n")[0]
    return f"field {field}: {reason}" if field else reason


def array_problem(
    array: np.ndarray,
    shape: tuple[int | None, ...],
    dtype: type,
    values: tuple[int, ...] | None = None,
) -> str | None:
    """What keeps ``array`` from having ``shape`` (None: any length there), ``dtype`` and,
    where given, only ``values``; None when it has them."""
    wanted = "(" + ", ".join("n" if side is None else str(side) for side in shape) + ")"
    fits = array.ndim == len(shape) and all(
        want is None or have == want for have, want in zip(array.shape, shape)
    )
    if not fits:
        return f"shape {array.shape}, expected {wanted}"
    if array.dtype != np.dtype(dtype):
        return f"dtype {array.dtype}, expected {np.dtype(dtype)}"
    if values is not None and array.size and not np.isin(array, values).all():
        return f"values outside {list(values)}"
    return None
