"""What the networks are fed: attribute-noise vectors and the two halves' batches.

* ``attribute_noise``: 40 attribute bits (CelebA order) followed by ``noise_dim``
  noise floats. With ``noise_dim=1`` this is the original design's 41-element vector:
  40 bits and one float in [0, 1); longer noise is standard normal.
* ``AttributeSampler``: where the 40 bits come from. ``dataset`` draws whole rows from
  the training set (CelebA's attributes are correlated and rare ones are rare);
  ``uniform`` draws independent fair bits, as the original design did; ``spec`` forces
  the attributes of a request such as ``"Smiling=0.7,Eyeglasses,-Male"`` to their
  strengths and draws the others from the data rows that agree with it.
* ``DiscriminatorBatches`` and ``GeneratorBatches``: ``keras.utils.PyDataset``
  sequences for ``d_trainer.train_on_batch`` (models.build_d_trainer) and
  ``gan.train_on_batch``.

Everything random here is drawn from ``numpy.random.default_rng([seed, ...])`` keyed by
epoch and batch, so a batch is the same whoever asks for it and in whatever order. The
models themselves live in models.py; the images in dataset.py.
"""

from __future__ import annotations

import numpy as np

import augment
from attributes import ATTRIBUTES, INDEX, NUM_ATTRIBUTES, parse_spec
from dataset import CelebaBatches
from quiet_keras import keras

SOURCES = ("dataset", "uniform", "spec")
REAL, FAKE = 1.0, 0.0


def sample_noise(count: int, noise_dim: int, rng: np.random.Generator) -> np.ndarray:
    """The noise part: one float in [0, 1) as in the original design when noise_dim is 1,
    standard normal floats otherwise (as DCGAN; their spread keeps the generator from
    ignoring them next to the 0/1 attribute bits)."""
    if noise_dim == 1:
        return rng.random((count, 1), dtype=np.float32)
    return rng.standard_normal((count, noise_dim), dtype=np.float32)


def attribute_noise(attributes: np.ndarray, noise_dim: int, rng: np.random.Generator) -> np.ndarray:
    """[attributes | noise] as float32: the generator's input vector."""
    noise = sample_noise(len(attributes), noise_dim, rng)
    return np.concatenate([attributes.astype(np.float32), noise], axis=1)


class AttributeSampler:
    """Draws 40-bit attribute rows from the data, uniformly, or for a request.

    ``data`` is the (n, 40) 0/1 attribute matrix of the training rows; it is needed by
    the ``dataset`` and ``spec`` sources.
    """

    def __init__(
        self,
        source: str = "dataset",
        data: np.ndarray | None = None,
        spec: str | dict[str, float] | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown attribute source {source!r}; use one of {SOURCES}")
        if source != "uniform" and (data is None or len(data) == 0):
            raise ValueError(f"attribute source {source!r} needs the data's attribute rows")
        self.source = source
        self.data = None if data is None else np.asarray(data, np.uint8)
        self.settings = parse_spec(spec) if isinstance(spec, str) else dict(spec or {})
        self.candidates = self.data
        # Whether the data holds rows with every forced setting; when it does not, the
        # other attributes come from all rows and only the forced ones are set.
        self.supported = True
        if source == "spec":
            self.candidates = self._agreeing_rows()
            self.supported = len(self.candidates) > 0
            if not self.supported:
                self.candidates = self.data

    def _agreeing_rows(self) -> np.ndarray:
        """Data rows that agree with every setting that is on (1 or more) or off (0);
        a strength between says nothing of which faces it fits."""
        plain = {name: int(s >= 1) for name, s in self.settings.items() if s == 0 or s >= 1}
        columns = [INDEX[name] for name in plain]
        wanted = np.array(list(plain.values()), np.uint8)
        return self.data[(self.data[:, columns] == wanted).all(axis=1)]

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` rows of 40 float32 attribute values: 0/1, and the request's
        strengths where it gives them."""
        if self.source == "uniform":
            rows = rng.integers(0, 2, (count, NUM_ATTRIBUTES), dtype=np.uint8)
        else:
            rows = self.candidates[rng.integers(0, len(self.candidates), count)]
        return forced(rows.astype(np.float32), self.settings)


def forced(rows: np.ndarray, settings: dict[str, float]) -> np.ndarray:
    """A copy of attribute ``rows`` with each attribute of ``settings`` set to its
    strength (attributes.parse_spec)."""
    rows = np.array(rows, np.float32)
    for name, strength in settings.items():
        rows[:, INDEX[name]] = strength
    return rows


class DiscriminatorBatches(keras.utils.PyDataset):
    """Batches for ``d_trainer.train_on_batch``: ((images, attributes, wrong attributes),
    targets, sample weights), from ``discriminator_batch``.

    Each batch holds ``n`` real images with their true attributes (target 1) and ``n``
    generated images with sampled attributes (target 0); the first ``m`` (about half,
    a multiple of the discriminator's minibatch group, 4) real images are also scored
    against another image's attributes (target 0), so that a real-looking face with the
    wrong attributes is taught to score as fake. With ``augment``, the inputs end with
    each image's augmentation draws (augment.draw, each operation gated on with
    ``augment_p``).
    """

    def __init__(
        self,
        real: CelebaBatches,
        generator: keras.Model,
        sampler: AttributeSampler,
        noise_dim: int,
        seed: int = 0,
        augment: bool = False,
        augment_p: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.real, self.generator, self.sampler = real, generator, sampler
        self.noise_dim, self.seed, self.augment = noise_dim, seed, augment
        self.augment_p = augment_p

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, index: int):
        return with_fakes(self.parts(index), self.generator)

    def parts(self, index: int, images: bool = True) -> tuple:
        """Batch ``index`` before the generator runs: the attribute-noise inputs of its
        fakes, their attributes, the real half (``real_half``) and the augmentation
        draws of all its images (None without ``augment``). Without ``images`` the real
        half's images are None: an engine that keeps the images on the device gathers
        them there (compiled_step.py)."""
        if images:
            images, attrs = self.real[index]
        else:
            images, attrs = None, self.real.batch_attributes(index)
        rng = np.random.default_rng([self.seed, 1, self.real.epoch, index])
        fake_attrs = self.sampler.sample(len(attrs), rng)
        noise = attribute_noise(fake_attrs, self.noise_dim, rng)
        half = real_half(images, attrs, rng)
        params = None
        if self.augment:
            draws = np.random.default_rng([self.seed, 3, self.real.epoch, index])
            params = augment.draw(2 * len(attrs), draws, self.augment_p)
        return noise, fake_attrs, half, params

    def on_epoch_end(self) -> None:
        self.real.on_epoch_end()


def real_half(images: np.ndarray, attrs: np.ndarray, rng: np.random.Generator) -> tuple:
    """(images, attributes, wrong attributes, mismatch) for ``discriminator_batch``: the
    first ``m`` real images (about half, a multiple of the minibatch group, 4) get
    another image's attributes and mismatch 1; the others keep their own, unused."""
    m = len(attrs) // 8 * 4
    wrong = np.concatenate([mismatched(attrs[:m], rng), attrs[m:]])
    mismatch = (np.arange(len(attrs)) < m).astype(np.float32)
    return images, attrs, wrong, mismatch


def with_fakes(parts: tuple, generator: keras.Model) -> tuple:
    """D's batch from ``DiscriminatorBatches.parts``: the generator's fakes for its
    noise, made in inference mode, joined to the real half."""
    noise, fake_attrs, half, params = parts
    fakes = generator.predict_on_batch(noise)
    return discriminator_batch(half, np.asarray(fakes), fake_attrs, params)


def discriminator_batch(
    real_half: tuple,
    fakes: np.ndarray,
    fake_attrs: np.ndarray,
    params: np.ndarray | None = None,
    xp=np,
):
    """((images, attributes, wrong attributes), targets, sample weights) for
    ``d_trainer.train_on_batch`` from the real half (images, attributes, wrong
    attributes, and 1 where those are in play): the real images (face target 1;
    "mismatch" target 0 where the wrong attributes are in play) followed by the
    generated ones with the attributes they were made for (face target 0). The
    attribute head learns from real images only, so its weight is 0 on generated ones,
    and 2 on the real images in a wrong-attribute pair too: each pair counts, as when
    the pairs were separate images (models.build_d_trainer). ``xp`` is the array
    module: numpy, or jax.numpy inside a compiled step."""
    images, attrs, wrong, mismatch = real_half
    n, k = len(images), len(fakes)
    face = xp.concatenate([xp.full(n, REAL), xp.full(k, FAKE)]).astype(np.float32)
    attribute_weight = xp.concatenate([1 + mismatch, xp.zeros(k)]).astype(np.float32)
    batch_attrs = xp.concatenate([attrs, fake_attrs])
    inputs = (
        xp.concatenate([images, fakes]),
        batch_attrs,
        xp.concatenate([wrong, fake_attrs]),
    ) + (() if params is None else (params,))
    targets = {
        "face": face[:, None],
        "attributes": batch_attrs,
        "mismatch": xp.full((n + k, 1), FAKE, np.float32),
    }
    weights = {
        "face": xp.ones_like(face),
        "attributes": attribute_weight,
        "mismatch": xp.concatenate([mismatch, xp.zeros(k, np.float32)]),
    }
    return inputs, targets, weights


def mismatched(attrs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row's attributes replaced by another row's (a derangement by rotation)."""
    if len(attrs) < 2:
        return 1 - attrs
    return np.roll(attrs, int(rng.integers(1, len(attrs))), axis=0)


class GeneratorBatches(keras.utils.PyDataset):
    """Batches for ``gan.train_on_batch``: attribute-noise inputs (with ``augment``,
    and each image's augmentation draws, gated on with ``augment_p``); targets "face"
    for every image and, for the attribute head, the attributes each image was asked
    for. With ``mode_seeking`` the second half of a batch asks for the first half's
    attributes (models.ModeSeeking compares the pairs), and the "mode_seeking" target is
    a placeholder."""

    def __init__(
        self,
        sampler: AttributeSampler,
        batch_size: int,
        steps: int,
        noise_dim: int,
        seed: int = 0,
        augment: bool = False,
        augment_p: float = 1.0,
        mode_seeking: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if mode_seeking and batch_size % 2:
            raise ValueError(
                f"batch_size {batch_size} is odd: mode seeking pairs the batch's halves; "
                "use an even batch size"
            )
        self.sampler, self.batch_size, self.steps = sampler, batch_size, steps
        self.noise_dim, self.seed, self.epoch, self.augment = noise_dim, seed, 0, augment
        self.augment_p, self.mode_seeking = augment_p, mode_seeking

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, 2, self.epoch, index])
        if self.mode_seeking:
            attrs = np.tile(self.sampler.sample(self.batch_size // 2, rng), (2, 1))
        else:
            attrs = self.sampler.sample(self.batch_size, rng)
        inputs = attribute_noise(attrs, self.noise_dim, rng)
        if self.augment:
            draws = np.random.default_rng([self.seed, 4, self.epoch, index])
            inputs = (inputs, augment.draw(self.batch_size, draws, self.augment_p))
        targets = {"face": np.full((self.batch_size, 1), REAL, np.float32), "attributes": attrs}
        if self.mode_seeking:
            targets["mode_seeking"] = np.zeros((self.batch_size, 1), np.float32)
        return inputs, targets

    def on_epoch_end(self) -> None:
        self.epoch += 1


def flipped(attrs: np.ndarray, name: str) -> np.ndarray:
    """``attrs`` with attribute ``name`` switched in every row."""
    switched = attrs.copy()
    switched[:, INDEX[name]] = 1 - switched[:, INDEX[name]]
    return switched


def describe(attrs: np.ndarray, names: tuple[str, ...] = ATTRIBUTES) -> str:
    """The attributes that are on in one row, for labels."""
    return ", ".join(name for name, bit in zip(names, attrs) if bit > 0.5) or "(none)"
