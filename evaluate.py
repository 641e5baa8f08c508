"""Measure what the GAN makes: attribute control, Fréchet distance and KID, diversity.

* An attribute classifier (a small Keras CNN, 40 sigmoid outputs) is trained on the
  real training faces at the GAN's resolution and cached; its accuracy on held-out
  real faces is the ceiling that generated faces are compared against.
* Attribute-control accuracy: for generated faces whose requested attributes are drawn
  from the data's joint distribution, how often the classifier agrees with the request,
  per attribute, on average, and balanced (mean of the on- and off-class recalls, so
  rare attributes cannot hide behind the majority class).
* Flip test: same noise, one attribute switched; how often the classifier's prediction
  switches with it.
* Fréchet distance and KID (feature_distances.py) between generated faces and a sample
  of the real training faces, on the classifier's features and on the standard FID
  Inception's (fid_inception.py, when requirements-fid.txt is installed: the FID and
  KID that papers report); beside each, the same figure for held-out real faces, which
  is what a perfect generator would score.
* Diversity: mean pairwise pixel distance between faces made for one attribute vector
  with different noise, beside the same figure for random pairs of real faces.
* Colour noise: the high-frequency part of the faces' chroma (``colour_noise``), beside
  held-out real faces': colour smears raise it, a photo's slowly varying colour does not.
* Bias (bias.py): which attributes the generator over- or under-produces against the
  real faces, and the skin-tone spread of its faces beside the real ones'.

    python evaluate.py --checkpoint runs/dcgan          # table, report.json, PNG
    python evaluate.py train-classifier --image-size 64  # the classifier alone

``TrainingMonitor`` is the cheap subset that ``dcgan.py --eval-every`` logs. This module
does not train the GAN (training.py) or read CelebA itself (dataset.py); its pictures are
figures.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

import atomic
import bias
import cli
import dataset
import feature_distances
import fid_inception
import figures
import pixels
import runs
import synth_faces
from attributes import ATTRIBUTES, NUM_ATTRIBUTES
from config import IMAGE_SIZES
from dataGens import AttributeSampler, attribute_noise, flipped, sample_noise
from quiet_keras import keras

layers = keras.layers
CLASSIFIER_VERSION = 2
MAX_SCORED = 50_000  # generated faces held in memory, as float32, with their features
# The classifier trains for at least this many batches of 128, and at least 6 epochs:
# 6 epochs of the synthetic set, 14 of the 7,200 training faces of the shared real subset.
CLASSIFIER_STEPS = 750
HELD_OUT_FRACTION = 0.1  # of the training split, when the data has no test partition
COLOUR_SIGMA = 1.5  # colour_noise's blur, in pixels of a 64-pixel face (scaled with it)


# ------------------------------------------------------------------ classifier


def build_classifier(image_size: int, width: int = 32) -> keras.Model:
    """Image -> 40 attribute probabilities; the layer named "features" is the
    penultimate embedding used for distances between image sets."""
    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    for i in range(4):
        x = layers.Conv2D(width * 2**i, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(x))
    x = layers.GlobalAveragePooling2D()(x)
    features = layers.Dense(256, activation="relu", name="features")(x)
    outputs = layers.Dense(NUM_ATTRIBUTES, activation="sigmoid", name="attributes")(features)
    return keras.Model(image, outputs, name="attribute_classifier")


def evaluation_split(cache: dataset.Cache, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): the test partition, else a held-out fraction."""
    held_out = cache.split_indices("test")
    train = cache.split_indices("train")
    if len(held_out) == 0:
        shuffled = np.random.default_rng(seed).permutation(train)
        cut = max(1, int(len(train) * HELD_OUT_FRACTION))
        held_out, train = np.sort(shuffled[:cut]), np.sort(shuffled[cut:])
    return train, held_out


class RowBatches(keras.utils.PyDataset):
    """Batches of (images, attributes) from chosen cache rows, shuffled per epoch."""

    def __init__(
        self,
        cache: dataset.Cache,
        rows: np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.cache, self.rows, self.batch_size = cache, rows, batch_size
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __getitem__(self, index: int):
        order = self.rows
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.rows)
        rows = np.sort(order[index * self.batch_size : (index + 1) * self.batch_size])
        return pixels.to_float(self.cache.images[rows]), self.cache.attributes[rows].astype(
            np.float32
        )

    def on_epoch_end(self) -> None:
        self.epoch += 1


def classifier_path(cache: dataset.Cache) -> Path:
    return cache.path / f"attribute-classifier-v{CLASSIFIER_VERSION}.keras"


def balanced_bce(frequencies: np.ndarray):
    """Binary cross-entropy with each attribute's on and off rows weighted 1/(2p) and
    1/(2(1-p)), so rare attributes weigh as much as common ones: it optimises the
    balanced accuracy reported here."""
    p = np.clip(frequencies, 0.01, 0.99).astype(np.float32)
    on_weight, off_weight = 0.5 / p, 0.5 / (1 - p)
    ops = keras.ops

    def loss(y_true, y_pred):
        y_pred = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        terms = on_weight * y_true * ops.log(y_pred) + off_weight * (1 - y_true) * ops.log(
            1 - y_pred
        )
        return -ops.mean(terms, axis=-1)

    return loss


def train_classifier(
    cache: dataset.Cache,
    epochs: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    verbose: int = 1,
) -> keras.Model:
    """Train on the training rows and save next to the cache it was trained on."""
    keras.utils.set_random_seed(seed)
    train_rows, _ = evaluation_split(cache, seed)
    batches = RowBatches(cache, train_rows, batch_size, seed)
    epochs = epochs or max(6, -(-CLASSIFIER_STEPS // len(batches)))
    model = build_classifier(cache.images.shape[1])
    model.compile(
        keras.optimizers.Adam(1e-3),
        balanced_bce(cache.attributes[train_rows].mean(axis=0)),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    model.fit(batches, epochs=epochs, verbose=verbose)
    with atomic.replacing(classifier_path(cache)) as partial:
        model.save(partial)
    return model


def load_or_train_classifier(
    cache: dataset.Cache, path: str | None = None, verbose: int = 1
) -> keras.Model:
    """A given classifier, the one cached for this data and size, or a new one (also in
    place of a cached file that is damaged or not a classifier of these images)."""
    target = Path(path) if path else classifier_path(cache)
    if target.is_file():
        classifier, problem = load_classifier(target, cache.manifest["image_size"])
        if problem is None:
            return classifier
        if path:
            raise dataset.DataError(f"--classifier {path}: {problem}; give a trained one")
        print(f"{target}: {problem}; training it again", file=sys.stderr)
    elif path:
        raise dataset.DataError(f"--classifier {path}: no such file")
    print(
        f"training the attribute classifier for {cache.path.name} (cached for next time)",
        file=sys.stderr,
    )
    return train_classifier(cache, verbose=verbose)


def load_classifier(path: Path, side: int | None = None) -> tuple[keras.Model | None, str | None]:
    """(classifier, None), or (None, why it is not one for side x side faces; any
    square side where ``side`` is None)."""
    try:
        classifier = keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        return None, f"not a readable Keras model ({str(error).strip()[:120]})"
    shapes = (tuple(classifier.input_shape), tuple(classifier.output_shape))
    side = side or shapes[0][1]
    if shapes != ((None, side, side, 3), (None, NUM_ATTRIBUTES)):
        return None, f"maps {shapes[0]} to {shapes[1]}, not {side}x{side} faces to 40 attributes"
    return classifier, None


# --------------------------------------------------------------------- metrics


def attribute_scores(predicted: np.ndarray, wanted: np.ndarray) -> dict[str, np.ndarray]:
    """Per-attribute accuracy and balanced accuracy of 0/1 predictions against targets.

    Balanced accuracy is the mean of the recalls on the "on" and "off" rows; where
    only one class occurs it is that class's recall.
    """
    predicted, wanted = predicted.astype(bool), wanted.astype(bool)
    accuracy = (predicted == wanted).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        on = (predicted & wanted).sum(0) / wanted.sum(0)
        off = (~predicted & ~wanted).sum(0) / (~wanted).sum(0)
    balanced = np.where(np.isnan(on), off, np.where(np.isnan(off), on, (on + off) / 2))
    return {"accuracy": accuracy, "balanced": balanced}


def classify(classifier: keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return classifier.predict(images, batch_size=batch_size, verbose=0) > 0.5


def feature_model(classifier: keras.Model) -> keras.Model:
    """Image -> the classifier's 256-d penultimate features."""
    return keras.Model(classifier.inputs, classifier.get_layer("features").output)


def real_ceiling(classifier, cache: dataset.Cache, limit: int = 5000) -> dict[str, np.ndarray]:
    """The classifier's scores on held-out real faces."""
    _, held_out = evaluation_split(cache)
    rows = np.sort(held_out[:limit])
    images = pixels.to_float(cache.images[rows])
    return attribute_scores(classify(classifier, images), cache.attributes[rows])


def visible_attributes(cache: dataset.Cache) -> np.ndarray:
    """Mask of the attributes the pictures can show: all of CelebA's; on synthetic
    faces, all but the label-only ones."""
    hidden = synth_faces.LABEL_ONLY if synth_faces.is_synthetic(cache.manifest["source"]) else ()
    return np.array([name not in hidden for name in ATTRIBUTES])


def faces_for(generator: keras.Model, attrs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Generated images for given attribute rows and noise."""
    inputs = np.concatenate([attrs.astype(np.float32), noise], axis=1)
    return generator.predict(inputs, batch_size=256, verbose=0)


def requested_faces(
    generator, data_rows: np.ndarray, noise_dim: int, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(attribute requests drawn from the data's joint distribution, generated images).
    The images are rounded to 8 bits, as the real faces are and as generated.npz saves
    them, so that re-scoring the saved faces gives the report's numbers."""
    rng = np.random.default_rng([seed, 7])
    attrs = AttributeSampler("dataset", data_rows).sample(count, rng)
    images = generator.predict(attribute_noise(attrs, noise_dim, rng), batch_size=256, verbose=0)
    return attrs, pixels.to_float(pixels.to_uint8(images))


def flip_rates(
    generator, classifier, data_rows: np.ndarray, noise_dim: int, count: int = 500, seed: int = 0
) -> np.ndarray:
    """Per attribute: share of faces whose predicted value follows a flip of the request."""
    rng = np.random.default_rng([seed, 8])
    attrs = AttributeSampler("dataset", data_rows).sample(count, rng)
    noise = sample_noise(count, noise_dim, rng)
    base = classify(classifier, faces_for(generator, attrs, noise))
    rates = np.zeros(NUM_ATTRIBUTES)
    for k, name in enumerate(ATTRIBUTES):
        switched = flipped(attrs, name)
        after = classify(classifier, faces_for(generator, switched, noise))[:, k]
        rates[k] = np.mean((after != base[:, k]) & (after == switched[:, k].astype(bool)))
    return rates


def mean_pairwise_distance(images: np.ndarray) -> float:
    """Mean RMS pixel distance over all pairs of a set of images in [-1, 1]."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    squared = (flat**2).sum(1)
    d2 = np.maximum(squared[:, None] + squared[None] - 2 * flat @ flat.T, 0) / flat.shape[1]
    upper = np.triu_indices(len(images), 1)
    return float(np.sqrt(d2[upper]).mean())


def diversity(
    generator,
    cache: dataset.Cache,
    data_rows: np.ndarray,
    noise_dim: int,
    vectors: int = 20,
    per_vector: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Pairwise distance of faces for one attribute vector, beside real random pairs."""
    rng = np.random.default_rng([seed, 9])
    attrs = AttributeSampler("dataset", data_rows).sample(vectors, rng)
    same_attrs = []
    for row in attrs:
        repeated = np.repeat(row[None], per_vector, axis=0)
        same_attrs.append(
            mean_pairwise_distance(
                faces_for(generator, repeated, sample_noise(per_vector, noise_dim, rng))
            )
        )
    rows = np.sort(rng.choice(len(cache.images), size=min(320, len(cache.images)), replace=False))
    real = mean_pairwise_distance(pixels.to_float(cache.images[rows]))
    return {"generated_same_attributes": float(np.mean(same_attrs)), "real_random_pairs": real}


def colour_noise(images: np.ndarray) -> float:
    """Mean high-frequency chroma of uint8 RGB images, in 8-bit levels: each image's Cr
    and Cb (YCrCb) minus their Gaussian blur (``COLOUR_SIGMA``), mean absolute value.
    A photo's colour varies slowly over skin, hair and background (cameras and JPEG
    keep chroma at low resolution); blotches of colour where it should not change - the
    colour smears of a GAN that has not learnt them away - raise it."""
    sigma = COLOUR_SIGMA * images.shape[1] / 64
    chroma = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb) for image in images])
    chroma = chroma[..., 1:].astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in chroma])
    return float(np.abs(chroma - blurred).mean())


# ------------------------------------------------------------- feature distances


def real_set_size(cache: dataset.Cache, count: int) -> int:
    """How many images each of ``real_sets``' two sets holds."""
    train, held_out = evaluation_split(cache)
    return min(count, len(train), len(held_out))


def real_sets(cache: dataset.Cache, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(reference, held-out) real images, the same number of each: a sample of the
    training rows, which generated faces are measured against, and held-out rows,
    whose distance to the reference is the real-vs-real baseline."""
    train, held_out = evaluation_split(cache)
    n = real_set_size(cache, count)
    rng = np.random.default_rng([seed, 10])
    pick = [np.sort(rng.choice(rows, n, replace=False)) for rows in (train, held_out)]
    return pixels.to_float(cache.images[pick[0]]), pixels.to_float(cache.images[pick[1]])


def distances(reference: np.ndarray, held_out: np.ndarray, generated: np.ndarray, seed: int = 0):
    """Fréchet distance and KID against the reference features, of generated faces'
    and of held-out real faces' (the baseline), all sets of one size."""
    kid_gen = feature_distances.kernel_inception_distance(generated, reference, seed=seed)
    kid_base = feature_distances.kernel_inception_distance(held_out, reference, seed=seed)
    return {
        "images": len(reference),
        "frechet": {
            "generated": feature_distances.frechet_distance(generated, reference),
            "real_baseline": feature_distances.frechet_distance(held_out, reference),
        },
        "kid": {
            "generated": kid_gen[0],
            "generated_std": kid_gen[1],
            "real_baseline": kid_base[0],
            "real_baseline_std": kid_base[1],
        },
    }


def load_inception(wanted: bool = True) -> tuple[fid_inception.FidInception | None, str]:
    """(the FID Inception, what it is) or (None, why standard FID is skipped, in one
    line: not asked for, or PyTorch or the network not installed)."""
    if not wanted:
        return None, "standard FID skipped (--no-fid)"
    try:
        return fid_inception.FidInception(), fid_inception.DESCRIPTION
    except fid_inception.InceptionMissingError as why:
        print(f"{why}; standard FID skipped", file=sys.stderr)
        return None, f"{why}; standard FID skipped"


def inception_reference(
    cache: dataset.Cache, inception: fid_inception.FidInception, count: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The FID Inception's features of ``real_sets(cache, count, seed)``, cached beside
    the data: at 6 images a second on two CPU cores they are worth computing once. A
    cached file that does not match (other network, sizes, unreadable) is recomputed."""
    n = real_set_size(cache, count)  # the images themselves are read only when not cached
    path = cache.path / f"fid-reference-n{n}-seed{seed}.npz"
    expected = (n, fid_inception.FEATURES)
    try:
        with np.load(path, allow_pickle=False) as saved:
            if (
                str(saved["network_sha1"]) == fid_inception.NETWORK_SHA1
                and saved["reference"].shape == saved["held_out"].shape == expected
                and np.isfinite(saved["reference"]).all()
                and np.isfinite(saved["held_out"]).all()
            ):
                return saved["reference"], saved["held_out"]
    except (OSError, KeyError, ValueError):
        pass  # absent or not ours: computed and written again below
    print(f"FID Inception features of {2 * n} real faces (cached)", file=sys.stderr)
    features = [inception.features(images) for images in real_sets(cache, count, seed)]
    with atomic.replacing(path) as partial, open(partial, "wb") as handle:
        np.savez(
            handle,
            reference=features[0],
            held_out=features[1],
            network_sha1=np.array(fid_inception.NETWORK_SHA1),
        )
    return features[0], features[1]


# ------------------------------------------------------------------------ report


def evaluate(
    checkpoint: Path,
    cache: dataset.Cache,
    classifier,
    count: int = 2000,
    seed: int = 0,
    inception: tuple[fid_inception.FidInception | None, str] = (None, "FID not asked for"),
    raw: bool = False,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(report, requested attributes, generated images) of the checkpoint's generator
    average, or with ``raw`` (or where the run keeps none) of its generator itself.
    ``inception`` is what ``load_inception`` returns."""
    saved = runs.load_checkpoint(checkpoint, compile=False)
    generator, state, data_rows = saved.faces(raw), saved.state, saved.attribute_rows
    noise_dim = state["settings"]["noise_dim"]
    ceiling = real_ceiling(classifier, cache)
    attrs, images = requested_faces(generator, data_rows, noise_dim, count, seed)
    predicted = classify(classifier, images)
    control = attribute_scores(predicted, attrs)
    flips = flip_rates(generator, classifier, data_rows, noise_dim, max(100, count // 4), seed)
    spread = diversity(generator, cache, data_rows, noise_dim, seed=seed)
    reference, held_out = real_sets(cache, count, seed)
    features = feature_model(classifier)
    on_features = distances(
        *(features.predict(x, batch_size=256, verbose=0) for x in (reference, held_out)),
        features.predict(images[: len(reference)], batch_size=256, verbose=0),
        seed,
    )
    generated_8bit, held_out_8bit = pixels.to_uint8(images), pixels.to_uint8(held_out)
    made_up = bias.report(
        predicted,
        classify(classifier, held_out),
        dataset.frequencies(cache),
        generated_8bit,
        held_out_8bit,
    )
    network, described = inception
    on_inception = {"skipped": described}
    if network is not None:
        real = inception_reference(cache, network, count, seed)
        generated = network.features(images[: len(reference)])
        on_inception = {"features": described} | distances(*real, generated, seed)
    visible = visible_attributes(cache)
    per_attribute = {
        name: {
            "generated_accuracy": float(control["accuracy"][k]),
            "generated_balanced": float(control["balanced"][k]),
            "real_accuracy": float(ceiling["accuracy"][k]),
            "real_balanced": float(ceiling["balanced"][k]),
            "flip_rate": float(flips[k]),
            "visible": bool(visible[k]),
        }
        for k, name in enumerate(ATTRIBUTES)
    }
    means = {
        f"{who}_{score}{suffix}": float(table[score][mask].mean())
        for who, table in (("generated", control), ("real", ceiling))
        for score in ("accuracy", "balanced")
        for suffix, mask in (("", slice(None)), ("_visible", visible))
    }
    report = {
        "checkpoint": str(checkpoint),
        "epoch": state["epoch"],
        "generator": "trained" if generator is saved.generator else "average",
        "settings": state["settings"],
        "generated_images": count,
        "summary": {
            **means,
            "visible_attributes": int(visible.sum()),
            "flip_rate": float(flips.mean()),
            **{f"diversity_{k}": v for k, v in spread.items()},
            "colour_noise_generated": colour_noise(generated_8bit),
            "colour_noise_real": colour_noise(held_out_8bit),
        },
        "attributes": per_attribute,
        "distances": {
            "classifier": {"features": "attribute classifier, 256-d penultimate layer"}
            | on_features,
            "fid_inception": on_inception,
        },
        "bias": made_up,
    }
    return report, attrs, images


class TrainingMonitor:
    """The cheap metrics ``dcgan.py --eval-every`` logs while training: attribute-control
    accuracy on the visible attributes, the classifier-feature Fréchet distance (with
    its real-vs-real baseline), same-attribute diversity and, when the FID Inception is
    installed, FID (with its baseline) and KID on ``fid_count`` faces (NaN when not:
    the columns stay the same), all on fixed requests."""

    def __init__(
        self, cache: dataset.Cache, count: int = 500, fid_count: int = 200, seed: int = 0
    ) -> None:
        self.cache, self.count, self.seed = cache, count, seed
        self.classifier = load_or_train_classifier(cache)
        self.features = feature_model(self.classifier)
        reference, held_out = real_sets(cache, count, seed)
        self.reference = self._features(reference)
        self.baseline = feature_distances.frechet_distance(self._features(held_out), self.reference)
        self.visible = visible_attributes(cache)
        self.inception, _ = load_inception()
        if self.inception is not None:
            self.fid_real = inception_reference(cache, self.inception, fid_count, seed)

    def _features(self, images: np.ndarray) -> np.ndarray:
        return self.features.predict(images, batch_size=256, verbose=0)

    def __call__(self, generator, data_rows: np.ndarray, noise_dim: int) -> dict[str, float]:
        attrs, images = requested_faces(generator, data_rows, noise_dim, self.count, self.seed)
        scores = attribute_scores(classify(self.classifier, images), attrs)
        generated = self._features(images[: len(self.reference)])
        spread = diversity(generator, self.cache, data_rows, noise_dim, vectors=8, seed=self.seed)
        return {
            "attr_accuracy": float(scores["accuracy"][self.visible].mean()),
            "attr_balanced": float(scores["balanced"][self.visible].mean()),
            "frechet": feature_distances.frechet_distance(generated, self.reference),
            "frechet_real": self.baseline,
            "diversity": spread["generated_same_attributes"],
            **self._fid(images),
        }

    def _fid(self, images: np.ndarray) -> dict[str, float]:
        if self.inception is None:
            return {"fid": np.nan, "fid_real": np.nan, "kid": np.nan}
        reference, held_out = self.fid_real
        found = distances(
            reference, held_out, self.inception.features(images[: len(reference)]), self.seed
        )
        return {
            "fid": found["frechet"]["generated"],
            "fid_real": found["frechet"]["real_baseline"],
            "kid": found["kid"]["generated"],
        }


def print_table(report: dict) -> None:
    print(
        f"{'attribute':<20} {'gen acc':>8} {'gen bal':>8} {'real acc':>9} {'real bal':>9} "
        f"{'flip':>6}"
    )
    for name, row in report["attributes"].items():
        note = "" if row["visible"] else "  (label only: not in the pictures)"
        print(
            f"{name:<20} {row['generated_accuracy']:8.1%} {row['generated_balanced']:8.1%} "
            f"{row['real_accuracy']:9.1%} {row['real_balanced']:9.1%} {row['flip_rate']:6.1%}"
            f"{note}"
        )
    s = report["summary"]
    print(
        f"{'mean':<20} {s['generated_accuracy']:8.1%} {s['generated_balanced']:8.1%} "
        f"{s['real_accuracy']:9.1%} {s['real_balanced']:9.1%} {s['flip_rate']:6.1%}"
    )
    if s["visible_attributes"] < NUM_ATTRIBUTES:
        print(
            f"{'mean, visible':<20} {s['generated_accuracy_visible']:8.1%} "
            f"{s['generated_balanced_visible']:8.1%} {s['real_accuracy_visible']:9.1%} "
            f"{s['real_balanced_visible']:9.1%}   ({s['visible_attributes']} attributes)"
        )
    print(
        f"diversity (mean RMS pixel distance): same attributes, different noise "
        f"{s['diversity_generated_same_attributes']:.3f}; real random pairs "
        f"{s['diversity_real_random_pairs']:.3f}"
    )
    print(
        f"colour noise (high-frequency chroma, 8-bit levels): generated "
        f"{s['colour_noise_generated']:.3f}; real held-out {s['colour_noise_real']:.3f}"
    )
    print(f"\n{'distance to real training faces':<40} {'generated':>10} {'real held-out':>14}")
    labels = {"classifier": "classifier features", "fid_inception": "standard Inception"}
    for name, found in report["distances"].items():
        if "skipped" in found:
            print(found["skipped"])
            continue
        fd, kid = found["frechet"], found["kid"]
        fd_name = "FID" if name == "fid_inception" else "Fréchet"
        fd_label = f"{fd_name}, {labels[name]}"
        print(f"{fd_label:<40} {fd['generated']:10.4g} {fd['real_baseline']:14.4g}")
        print(f"{'KID, ' + labels[name]:<40} {kid['generated']:10.4g} {kid['real_baseline']:14.4g}")
    n = report["distances"]["classifier"]["images"]
    print(
        f"({n} images per set: FID is biased upwards at small n, so compare it at equal "
        "n; KID is not)"
    )
    print_bias(report["bias"])


def plot_bias(found: dict, out: Path) -> None:
    """attribute_production.png and skin_tone.png from the report's bias section."""
    rows = found["production"]
    shares = {
        "data's labels": [row["labels"] for row in rows.values()],
        "classifier on real faces": [row["real"] for row in rows.values()],
        "classifier on generated faces": [row["generated"] for row in rows.values()],
    }
    figures.plot_frequencies(shares, list(rows), out / "attribute_production.png")
    tone = found["skin_tone"]["histogram"]
    counts = {"real faces": tone["real"], "generated faces": tone["generated"]}
    xlabel = "individual typology angle of the cheeks (degrees; higher is lighter)"
    figures.plot_histograms(tone["bins"], counts, xlabel, out / "skin_tone.png", bias.bands())


def print_bias(found: dict, worst: int = 5) -> None:
    """The most over- and under-produced attributes and the skin-tone bands."""
    rows = sorted(found["production"].items(), key=lambda item: item[1]["gap"])
    print("\nproduction (classifier's share: generated vs real faces, requests as the data)")
    for label, picked in (("over", rows[::-1][:worst]), ("under", rows[:worst])):
        text = ", ".join(
            f"{name} {row['generated']:.0%} vs {row['real']:.0%}" for name, row in picked
        )
        print(f"  most {label}-produced: {text}")
    tone = found["skin_tone"]
    print("skin tone (ITA bands, share of faces)   " + "  ".join(f"{n:>12}" for n, _ in bias.BANDS))
    for who in ("real", "generated"):
        shares = "  ".join(f"{tone[who][name]:12.1%}" for name, _ in bias.BANDS)
        print(f"  {who:<9} median {tone[who]['median']:5.1f} degrees      {shares}")


def write_outputs(report: dict, attrs: np.ndarray, images: np.ndarray, out: Path) -> None:
    """report.json, the accuracy, production and skin-tone charts and the scored faces
    (generated.npz: uint8
    images and the attributes requested for each, for re-scoring them elsewhere), each
    written atomically."""
    with atomic.replacing(out / "generated.npz") as partial, open(partial, "wb") as handle:
        np.savez_compressed(handle, images=pixels.to_uint8(images), attributes=attrs)
    figures.plot_accuracy(report, out / "attribute_accuracy.png")
    plot_bias(report["bias"], out)
    with atomic.replacing(out / "report.json") as partial:
        partial.write_text(json.dumps(report, indent=2))


# ---------------------------------------------------------------------------- CLI


def evaluate_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "evaluate.py",
        __doc__.split("\n\n")[0]
        + " (To train the attribute classifier alone: evaluate.py train-classifier --help)",
    )
    parser.add_argument(
        "--checkpoint",
        default="runs/dcgan",
        help="run folder, checkpoint folder or generator.keras",
    )
    cli.add_data_dir(parser)
    parser.add_argument("--classifier", help="a trained classifier .keras (default: cached)")
    parser.add_argument(
        "--count",
        type=cli.up_to(MAX_SCORED, cli.at_least_2),
        default=2000,
        help="generated faces to score",
    )
    parser.add_argument(
        "--fid",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standard FID and KID on the FID Inception's features (needs "
        "requirements-fid.txt; skipped, in one line, when not installed)",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="score the trained generator itself, not the generator average (--ema-kimg)",
    )
    parser.add_argument(
        "--out", default="eval", help="folder for report.json, the charts and generated.npz"
    )
    parser.add_argument(
        "--seed", type=cli.seed, default=0, help="seed of the requests and noise scored"
    )
    return parser


def classifier_parser() -> argparse.ArgumentParser:
    parser = cli.parser(
        "evaluate.py train-classifier",
        "Train the attribute classifier on the training split and print its "
        "accuracy on held-out real faces (the ceiling for generated ones).",
    )
    cli.add_data_dir(parser)
    parser.add_argument(
        "--image-size",
        type=int,
        default=64,
        choices=IMAGE_SIZES,
        help="image side in pixels: the GAN's",
    )
    parser.add_argument(
        "--epochs",
        type=cli.at_least_2,
        help=f"training epochs (default: enough for {CLASSIFIER_STEPS} batches of 128, "
        "and at least 6)",
    )
    parser.add_argument(
        "--seed", type=cli.seed, default=0, help="seed of initialisation and data order"
    )
    return parser


def run_evaluation(args: argparse.Namespace) -> int:
    folder = runs.find_checkpoint(args.checkpoint)
    out = Path(args.out)
    with atomic.output_folder(out) as staging:  # all of the report, or none of it
        inception = load_inception(args.fid)
        settings = runs.read_state(folder)["settings"]
        root = dataset.resolve_data_dir(args.data_dir or settings["data"])
        cache = dataset.build_cache(root, settings["image_size"])
        classifier = load_or_train_classifier(cache, args.classifier)
        report, attrs, images = evaluate(
            folder, cache, classifier, args.count, args.seed, inception, args.raw
        )
        atomic.check_space(staging, images.size, "the scored faces")
        write_outputs(report, attrs, images, staging)
    print_table(report)
    print(f"wrote report.json, generated.npz and three charts (*.png) to {out}")
    return 0


def run_classifier_training(args: argparse.Namespace) -> int:
    cache = dataset.build_cache(dataset.resolve_data_dir(args.data_dir), args.image_size)
    classifier = train_classifier(cache, args.epochs, seed=args.seed)
    scores = real_ceiling(classifier, cache)
    print(f"{'attribute':<20} {'accuracy':>9} {'balanced':>9}   (held-out real faces)")
    for k, name in enumerate(ATTRIBUTES):
        print(f"{name:<20} {scores['accuracy'][k]:9.1%} {scores['balanced'][k]:9.1%}")
    print(f"{'mean':<20} {scores['accuracy'].mean():9.1%} {scores['balanced'].mean():9.1%}")
    print(f"saved {classifier_path(cache)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main(
        argv,
        cli.Command(evaluate_parser, run_evaluation),
        {"train-classifier": cli.Command(classifier_parser, run_classifier_training)},
    )


if __name__ == "__main__":
    sys.exit(main())
