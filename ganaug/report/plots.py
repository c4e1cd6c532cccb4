"""Matplotlib figures of the report: accuracy per protocol and regime, real vs synthetic sample grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganaug.evaluate.stats import SummaryRow  # noqa: E402
from ganaug.gan.sampling import tile_images  # noqa: E402
from ganaug.evaluate.stats import protocol_label  # noqa: E402
from ganaug.store import atomic_path  # noqa: E402


def accuracy_plot(summary: list[SummaryRow], path: Path) -> Path:
    """Mean test accuracy (error bars: std over seeds) per protocol, one x position per regime."""
    fractions = sorted({row.train_fraction for row in summary})
    labels = list(dict.fromkeys(protocol_label(r.protocol, r.ratio) for r in summary))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(fractions) * max(1, len(labels)) / 2), 3.8))
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        rows = {r.train_fraction: r for r in summary if protocol_label(r.protocol, r.ratio) == label}
        xs = [j + (i - (len(labels) - 1) / 2) * width for j, f in enumerate(fractions) if f in rows]
        means = [rows[f].accuracy_mean for f in fractions if f in rows]
        stds = [rows[f].accuracy_std for f in fractions if f in rows]
        ax.bar(xs, means, width=width, yerr=stds, capsize=3, label=label)
    low = min((r.accuracy_mean - r.accuracy_std for r in summary), default=0.0)
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_xticks(range(len(fractions)), [f"{f:.0%} of train" for f in fractions])
    ax.set_ylabel("test accuracy (real test split)")
    ax.set_title("Downstream accuracy per protocol and regime")
    ax.legend(fontsize="small", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


TILE_GAP = 1  # white pixels between tiles: neighbouring images never merge into strips


def _tile(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int) -> np.ndarray:
    """(classes*(H+gap)-gap, per_class*(W+gap)-gap, C) mosaic of the first `per_class` images of each class."""
    cells = np.zeros((num_classes * per_class, *images.shape[1:]), dtype=np.uint8)  # an empty cell stays black
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)[:per_class]
        cells[label * per_class : label * per_class + len(members)] = images[members]
    return tile_images(cells, per_class, gap=TILE_GAP)[TILE_GAP:-TILE_GAP, TILE_GAP:-TILE_GAP]  # no outer frame


def sample_grid(
    real: tuple[np.ndarray, np.ndarray],
    synthetic: tuple[np.ndarray, np.ndarray] | None,
    class_names: list[str],
    path: Path,
    per_class: int = 8,
) -> Path:
    """Real (left) and synthetic (right) samples, one row per class, drawn with square pixels."""
    panels = [("real", real)] + ([("synthetic", synthetic)] if synthetic is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 0.35 * len(class_names) + 1.2), squeeze=False)
    for ax, (title, (images, labels)) in zip(axes[0], panels):
        mosaic = _tile(images, labels, len(class_names), per_class)
        height = images.shape[2]
        # aspect="equal" whatever the matplotlibrc or style says: an 8x8 image must not turn into a strip
        ax.imshow(mosaic.squeeze(-1) if mosaic.shape[-1] == 1 else mosaic, cmap="gray", vmin=0, vmax=255,
                  interpolation="nearest", aspect="equal")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([i * (height + TILE_GAP) + (height - 1) / 2 for i in range(len(class_names))], class_names,
                      fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
