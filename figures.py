"""The pictures a run and an evaluation draw: labelled face grids, the loss and metric
curves, the per-attribute accuracy and frequency charts and histograms, each written
atomically as a PNG; and the animated GIF of a sweep or an interpolation.

Drawn with matplotlib's object API (``Figure``), not pyplot, so no display or global
state is needed. It computes nothing it draws: the numbers come from training.py
(losses.csv, metrics.csv), evaluate.py (the report) and dataset.py (frequencies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

import atomic
from pixels import to_uint8


def save_grid(
    images: np.ndarray,
    row_labels: list[str],
    path: Path,
    title: str = "",
    column_labels: list[str] | None = None,
) -> None:
    """A labelled grid PNG: one row per row label (the last may be short), written
    atomically."""
    rows = len(row_labels)
    cols = -(-len(images) // rows)
    pixels = to_uint8(images)
    label_width = 0.06 * max(map(len, row_labels)) if any(row_labels) else 0
    fig = Figure(figsize=(1.1 * cols + label_width, 1.1 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(pixels):
            ax.axis("off")
            continue
        ax.imshow(pixels[i])
        ax.set_xticks([])
        ax.set_yticks([])
        if i % cols == 0:
            ax.set_ylabel(row_labels[i // cols], rotation=0, ha="right", va="center", fontsize=7)
        if column_labels and i < cols:
            ax.set_title(column_labels[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def save_animation(frames: np.ndarray, path: Path, columns: int = 8, ms: int = 150) -> None:
    """An animated GIF, written atomically: ``frames`` is (steps, faces, h, w, 3) in
    [-1, 1]; each step shows its faces tiled ``columns`` to a row, and the loop runs
    forwards and back so it never jumps."""
    steps, faces, h, w, _ = frames.shape
    rows, cols = -(-faces // columns), min(faces, columns)
    tiles = np.full((steps, rows * cols, h, w, 3), 255, np.uint8)
    tiles[:, :faces] = to_uint8(frames)
    sheet = tiles.reshape(steps, rows, cols, h, w, 3).transpose(0, 1, 3, 2, 4, 5)
    pictures = [Image.fromarray(f) for f in sheet.reshape(steps, rows * h, cols * w, 3)]
    loop = pictures + pictures[-2:0:-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as partial:
        loop[0].save(
            partial, format="GIF", save_all=True, append_images=loop[1:], duration=ms, loop=0
        )


def save_figure(fig: Figure, path: Path) -> None:
    """Write a PNG atomically, so no half-written picture shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as partial:
        fig.savefig(partial, dpi=100, format="png")


def plot_history(run_dir: Path) -> None:
    """Redraw losses.png from losses.csv (raw per step, and a running mean), with a
    second panel for metrics.csv when ``--eval-every`` wrote one."""
    data = np.atleast_1d(np.genfromtxt(run_dir / "losses.csv", delimiter=",", names=True))
    metrics_path = run_dir / "metrics.csv"
    metrics = (
        np.atleast_1d(np.genfromtxt(metrics_path, delimiter=",", names=True))
        if metrics_path.exists()
        else None
    )
    fig = Figure(figsize=(8 if metrics is None else 14, 4))
    ax, *rest = fig.subplots(1, 1 if metrics is None else 2, squeeze=False)[0]
    x = np.arange(len(data))
    window = max(1, len(data) // 50)
    curves = (
        ("d_loss", "tab:red", "-"),
        ("g_loss", "tab:blue", "-"),
        ("d_attr", "tab:red", "--"),
        ("g_attr", "tab:blue", "--"),
    )
    for key, colour, style in curves:
        ax.plot(x, data[key], color=colour, alpha=0.2, linewidth=0.7, linestyle=style)
        smooth = np.convolve(data[key], np.ones(window) / window, mode="valid")
        ax.plot(x[window - 1 :], smooth, color=colour, linestyle=style, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    if metrics is not None:
        _plot_metrics(rest[0], metrics)
    fig.tight_layout()
    save_figure(fig, run_dir / "losses.png")


def _plot_metrics(ax, metrics: np.ndarray) -> None:
    """metrics.csv's accuracies (left axis) and Fréchet distances (right) by epoch."""
    ax.plot(metrics["epoch"], metrics["attr_accuracy"], "o-", label="attribute accuracy")
    ax.plot(metrics["epoch"], metrics["attr_balanced"], "o-", label="balanced accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (visible attributes)")
    ax.set_ylim(0.4, 1)
    ax.grid(alpha=0.3)
    right = ax.twinx()
    right.plot(metrics["epoch"], metrics["frechet"], "s-", color="tab:gray", label="Fréchet")
    right.plot(
        metrics["epoch"], metrics["frechet_real"], ":", color="tab:gray", label="Fréchet, real"
    )
    right.set_ylabel("Fréchet distance (classifier features)")
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="center right")


def plot_accuracy(report: dict, path: Path) -> None:
    """Balanced accuracy per attribute: generated faces against real held-out ones."""
    names = list(report["attributes"])
    generated = [report["attributes"][n]["generated_balanced"] for n in names]
    real = [report["attributes"][n]["real_balanced"] for n in names]
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, real, 0.4, label="real held-out faces (ceiling)", color="tab:gray")
    ax.bar(x + 0.2, generated, 0.4, label="generated faces, as requested", color="tab:blue")
    ax.axhline(0.5, color="black", linewidth=0.6, linestyle=":")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_ylabel("balanced accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_frequencies(shares: dict[str, np.ndarray], names: list[str], path: Path) -> None:
    """The share of faces showing each attribute, one bar per named set (the data, and
    the generator's faces where given) side by side."""
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    x = np.arange(len(names))
    width = 0.8 / len(shares)
    for i, (label, share) in enumerate(shares.items()):
        ax.bar(x + (i - (len(shares) - 1) / 2) * width, share, width, label=label)
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_ylabel("share of faces with the attribute")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_histograms(
    bins: list[float],
    counts: dict[str, list[int]],
    xlabel: str,
    path: Path,
    bands: list[tuple[str, float, float]] = (),
) -> None:
    """Histograms of one measure over several sets of faces, each scaled to a density
    so that sets of different sizes compare; ``bands`` (name, low, high) are shaded
    in turn and named."""
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    widths = np.diff(bins)
    for label, count in counts.items():
        density = np.asarray(count) / max(1, sum(count)) / widths
        ax.stairs(density, bins, linewidth=1.5, label=f"{label} ({sum(count)})")
    for i, (label, low, high) in enumerate(bands):
        ax.axvspan(low, high, color="gray", alpha=0.12 if i % 2 else 0.04, linewidth=0)
        ax.text(
            (low + high) / 2,
            0.98,
            label,
            transform=ax.get_xaxis_transform(),
            fontsize=6,
            ha="center",
            va="top",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    save_figure(fig, path)
