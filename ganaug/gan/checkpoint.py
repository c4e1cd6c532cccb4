"""Checkpoints: atomic writes, validated loading with `weights_only=True`, and the loaders other stages use.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so `torch.load(...,
weights_only=True)` reads it without unpickling any code.

Every checkpoint carries its own content id (`content_hash` of the rest of the file, the id that
run.json, GAN results and synthetic.parquet record) and every read recomputes and compares it, so a
damaged or altered file is a `DamagedCheckpointError` naming it, never silently different weights.
A training's best.pt and last.pt give way to the newest verifiable checkpoint beside them, with a
warning (`read_checkpoint_with_fallback`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganaug.device import WEIGHT_INIT_LOCK, select_device
from ganaug.errors import CheckpointError, DataError
from ganaug.gan.config import GanConfig
from ganaug.gan.networks import Discriminator, Generator, ImageShape
from ganaug.runs import BEST_CHECKPOINT, LAST_CHECKPOINT
from ganaug.store import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "ganaug-gan-checkpoint"
FORMAT_VERSION = 3  # 2: g_width is the generator's width at full resolution; EMA standing statistics; 3: content id
LEGACY_VERSIONS = (2,)  # read without a content id to check (a warning says so)
CONTENT_ID = "content_id"  # the key of the stored content id; not part of the content it identifies
LAST = LAST_CHECKPOINT
BEST = BEST_CHECKPOINT
_PERIODIC = re.compile(r"^step_(\d+)\.pt$")
_REQUIRED = ("step", "config", "meta", "generator", "discriminator", "generator_ema", "g_optimizer",
             "d_optimizer", "g_scheduler", "d_scheduler", "rng")
_META_KEYS = ("latent_dim", "num_classes", "channels", "height", "width", "class_names", "dataset_hash", "architecture")


def checkpoint_meta(cfg: GanConfig, shape: ImageShape, class_names: list[str], dataset_hash: str,
                    pseudo_labels_hash: str | None = None) -> dict[str, Any]:
    """What a reader needs to rebuild the networks and know what they were trained on."""
    meta = {
        "latent_dim": cfg.latent_dim,
        "num_classes": shape.num_classes,
        "channels": shape.channels,
        "height": shape.height,
        "width": shape.width,
        "class_names": list(class_names),
        "dataset_hash": dataset_hash,
        "architecture": cfg.architecture(shape.height, shape.width),
    }
    if pseudo_labels_hash is not None:  # absent without a pool, so checkpoints without one keep their content
        meta["pseudo_labels_hash"] = pseudo_labels_hash
    return meta


def content_hash(payload: Any) -> str:
    """sha256 of a checkpoint's content (tensors' dtype, shape and bytes; numbers; keys in sorted order).

    Unlike the file's bytes, it does not depend on how pickle happened to share objects, so a resumed
    run and an uninterrupted one that reach the same state get the same id.
    """
    digest = hashlib.sha256()
    _digest(payload, digest)
    return digest.hexdigest()


def _digest(value: Any, digest: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode())
            _digest(value[key], digest)
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _digest(item, digest)
    else:
        digest.update(repr((type(value).__name__, value)).encode())


def _encode(state: dict[str, Any], cfg: GanConfig, meta: dict[str, Any]) -> tuple[bytes, str]:
    # `resume` says how this call started, not what was trained: leaving it out gives a resumed run's
    # final checkpoint the same content (and checkpoint_id) as an uninterrupted one's.
    config = cfg.model_dump(mode="json", exclude={"resume"})
    return _serialize({"format": FORMAT, "version": FORMAT_VERSION, "config": config, "meta": meta, **state})


def _serialize(payload: dict[str, Any]) -> tuple[bytes, str]:
    """The file's bytes, with the payload's content id stored beside it, and that id."""
    content = {key: value for key, value in payload.items() if key != CONTENT_ID}
    digest = content_hash(content)
    buffer = io.BytesIO()
    torch.save({**content, CONTENT_ID: digest}, buffer)
    return buffer.getvalue(), digest


def write_payload(payload: dict[str, Any], path: str | Path) -> tuple[Path, str]:
    """Write a checkpoint payload (as `read_checkpoint` returns it, possibly edited) atomically with its content id.

    For tools and tests that change a checkpoint on purpose; returns (path, new content id).
    """
    data, digest = _serialize(payload)
    return atomic_write_bytes(path, data), digest


def write_best_checkpoint(state: dict[str, Any], cfg: GanConfig, meta: dict[str, Any], folder: Path,
                          selection: dict[str, Any]) -> tuple[Path, str]:
    """Write `best.pt` atomically with how it was chosen (`selection`); returns (path, content hash)."""
    data, digest = _encode({**state, "selection": selection}, cfg, meta)
    return atomic_write_bytes(folder / BEST, data), digest


def write_checkpoint(state: dict[str, Any], cfg: GanConfig, meta: dict[str, Any], folder: Path,
                     periodic: bool) -> tuple[Path, str]:
    """Write `last.pt` (and `step_<n>.pt` when periodic) atomically; returns (last path, content hash)."""
    data, digest = _encode(state, cfg, meta)
    if periodic:
        atomic_write_bytes(folder / f"step_{int(state['step']):07d}.pt", data)
        prune_checkpoints(folder, cfg.keep_checkpoints)
    last = atomic_write_bytes(folder / LAST, data)
    return last, digest


def periodic_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of the `step_<n>.pt` files in `folder`, oldest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := _PERIODIC.match(p.name))]
    return sorted(found)


def prune_checkpoints(folder: Path, keep: int, above_step: int | None = None) -> None:
    """Keep the newest `keep` periodic checkpoints; with `above_step`, also drop those past that step."""
    found = periodic_checkpoints(folder)
    stale = [path for step, path in found if above_step is not None and step > above_step]
    kept = [path for step, path in found if above_step is None or step <= above_step]
    for path in stale + kept[: max(len(kept) - keep, 0)]:
        path.unlink(missing_ok=True)


class DamagedCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read back (truncated, damaged, or not a checkpoint at all)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load, check and verify a checkpoint; any problem is a `CheckpointError` naming the file."""
    return read_verified_checkpoint(path)[0]


def _load_payload(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        reason = " ".join(str(err).split()) or type(err).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise DamagedCheckpointError(
            f"checkpoint {path} is corrupt or not a ganaug GAN checkpoint: torch cannot read its "
            f"{path.stat().st_size:,} bytes (truncated or damaged file?) [{reason}]"
        ) from None


def read_verified_checkpoint(path: str | Path) -> tuple[dict[str, Any], str]:
    """(payload, content id) of a checkpoint whose stored content id matches its content.

    The payload comes without the stored id, so `content_hash(payload)` is that id again. The id is
    checked first: a damaged marker or version number is damage (`DamagedCheckpointError`), not a
    foreign file.
    """
    path = Path(path)
    payload = _load_payload(path)
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} is not a ganaug GAN checkpoint (no '{FORMAT}' marker)")
    checkpoint_id = _verify_content_id(payload, path)
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a ganaug GAN checkpoint (no '{FORMAT}' marker)")
    version = payload.get("version")
    if version != FORMAT_VERSION and version not in LEGACY_VERSIONS:
        raise CheckpointError(f"checkpoint {path} has format version {version}; this ganaug reads versions "
                              f"{', '.join(map(str, (*LEGACY_VERSIONS, FORMAT_VERSION)))}")
    if checkpoint_id is None:
        if version == FORMAT_VERSION:
            raise DamagedCheckpointError(f"checkpoint {path} has lost its content id (key '{CONTENT_ID}'): the file was "
                                         "damaged or changed after it was written")
        log.warning("checkpoint %s was written by an older ganaug (format %s) without a content id; it cannot be "
                    "verified", path, version)
    missing = [key for key in _REQUIRED if key not in payload] + [
        f"meta.{key}" for key in _META_KEYS if not isinstance(payload.get("meta"), dict) or key not in payload["meta"]
    ]
    if missing:
        raise DamagedCheckpointError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    return payload, checkpoint_id or content_hash(payload)


def _verify_content_id(payload: dict[str, Any], path: Path) -> str | None:
    """Remove the stored content id from `payload` and return it once checked against the content; None without one."""
    stored = payload.pop(CONTENT_ID, None)
    if stored is None:
        return None
    actual = content_hash(payload)
    if stored != actual:
        raise DamagedCheckpointError(
            f"checkpoint {path} fails verification: its content hashes to {actual[:12]}, not to the content id "
            f"{str(stored)[:12]} stored in it (the file was damaged or changed after it was written)"
        )
    return actual


def _fallbacks(path: Path) -> list[Path]:
    """What replaces a damaged training output, newest first: best.pt gives way to last.pt, both to step_<n>.pt."""
    if path.name not in (BEST, LAST):
        return []
    later = [path.with_name(LAST)] if path.name == BEST else []
    return later + [candidate for _, candidate in reversed(periodic_checkpoints(path.parent))]


def read_checkpoint_with_fallback(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read `path`; if a training's best.pt or last.pt is damaged, the newest verifiable checkpoint beside it.

    best.pt falls back to last.pt, then (like last.pt) to the newest verifiable `step_<n>.pt`. Falling
    back logs a warning naming both files; with nothing to fall back to the original error stands.
    Any other file must verify itself. Returns the payload and the file it came from.
    """
    payload, _, source = read_checkpoint_with_fallback_id(path)
    return payload, source


def read_checkpoint_with_fallback_id(path: str | Path) -> tuple[dict[str, Any], str, Path]:
    """Like `read_checkpoint_with_fallback`, also returning the content id of the file read."""
    path = Path(path)
    try:
        return (*read_verified_checkpoint(path), path)
    except DamagedCheckpointError as err:
        damaged = err
    for candidate in _fallbacks(path):
        try:
            payload, checkpoint_id = read_verified_checkpoint(candidate)
        except CheckpointError as err:
            if candidate.exists():
                log.warning("skipping %s as a fallback: %s", candidate.name, err)
            continue
        kind = "checkpoint" if candidate.name == LAST else "periodic checkpoint"
        log.warning("%s; falling back to the newest valid %s %s (step %d)", damaged, kind, candidate, int(payload["step"]))
        return payload, checkpoint_id, candidate
    if path.name not in (BEST, LAST):
        raise damaged
    if path.name == BEST:
        raise CheckpointError(f"{damaged}; no readable last.pt or periodic checkpoint (step_<n>.pt) beside it to fall "
                              "back to. Train the GAN again (`ganaug train`)") from None
    raise CheckpointError(f"{damaged}; no readable periodic checkpoint (step_<n>.pt) beside it to fall back to. "
                          "Train afresh (resume=false)") from None


def check_compatible(payload: dict[str, Any], path: Path, cfg: GanConfig, shape: ImageShape, dataset_hash: str,
                     pseudo_labels_hash: str | None = None) -> None:
    """Raise `CheckpointError` when a checkpoint cannot continue this run (other networks or data)."""
    meta = payload["meta"]
    wanted: dict[str, Any] = {**cfg.architecture(shape.height, shape.width), "ema": cfg.ema_decay is not None}
    found: dict[str, Any] = {**meta["architecture"], "ema": payload["generator_ema"] is not None}
    for key, value in (("channels", shape.channels), ("height", shape.height), ("width", shape.width),
                       ("num_classes", shape.num_classes), ("dataset_hash", dataset_hash)):
        wanted[key], found[key] = value, meta[key]
    wanted["pseudo_labels_hash"], found["pseudo_labels_hash"] = pseudo_labels_hash, meta.get("pseudo_labels_hash")
    differences = [f"{key} is {found.get(key)!r} in the checkpoint but {wanted[key]!r} now"
                   for key in wanted if found.get(key) != wanted[key]]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} does not match this run: " + "; ".join(differences)
            + ". Restore those options, or train afresh with resume=false."
        )


def _shape(meta: dict[str, Any]) -> ImageShape:
    return ImageShape(int(meta["channels"]), int(meta["height"]), int(meta["width"]), int(meta["num_classes"]))


def _load_weights(module: nn.Module, state: Any, path: Path, what: str) -> None:
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise CheckpointError(f"checkpoint {path}: the {what} weights do not fit the network ({first})") from None


def load_generator(checkpoint: str | Path, use_ema: bool = True, device: str | torch.device = "auto",
                   fallback: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The trained generator in eval mode and its metadata (latent_dim, num_classes, channels, height, width, config, ...).

    The checkpoint is verified against its content id. With `fallback`, a damaged best.pt or last.pt
    gives way to the newest verifiable checkpoint beside it (`read_checkpoint_with_fallback`);
    `info["path"]` names the file actually read either way.
    """
    if fallback:
        payload, checkpoint_id, path = read_checkpoint_with_fallback_id(checkpoint)
    else:
        path = Path(checkpoint)
        payload, checkpoint_id = read_verified_checkpoint(path)
    meta = payload["meta"]
    if use_ema and payload["generator_ema"] is None:
        raise CheckpointError(f"checkpoint {path} has no EMA generator (trained with ema_decay=None); load it with use_ema=False")
    arch = meta["architecture"]
    # Built under the init lock with the global RNG restored: its random init (overwritten next) must not
    # draw from the RNG that another thread is seeding for its own weights (parallel tuning trials).
    with WEIGHT_INIT_LOCK, torch.random.fork_rng(devices=[]):
        generator = Generator(int(meta["latent_dim"]), _shape(meta), int(arch["g_width"]))
    state = payload["generator_ema"]["module"] if use_ema else payload["generator"]
    _load_weights(generator, state, path, "EMA generator" if use_ema else "generator")
    target = select_device(device) if isinstance(device, str) else device
    generator = generator.to(target).eval().requires_grad_(False)
    info = {key: meta[key] for key in _META_KEYS if key != "architecture"}
    info.update(config=payload["config"], step=int(payload["step"]), use_ema=use_ema, checkpoint_id=checkpoint_id,
                selection=payload.get("selection"), path=str(path))
    return generator, info


def load_discriminator(checkpoint: str | Path, device: str | torch.device = "auto") -> nn.Module:
    """The trained discriminator in eval mode (spectral norm frozen)."""
    path = Path(checkpoint)
    payload = read_checkpoint(path)
    meta, arch = payload["meta"], payload["meta"]["architecture"]
    with WEIGHT_INIT_LOCK, torch.random.fork_rng(devices=[]):
        discriminator = Discriminator(_shape(meta), int(arch["d_width"]), bool(arch["spectral_norm"]),
                                      str(arch["conditioning"]), bool(arch["minibatch_std"]))
    _load_weights(discriminator, payload["discriminator"], path, "discriminator")
    target = select_device(device) if isinstance(device, str) else device
    return discriminator.to(target).eval().requires_grad_(False)


@torch.no_grad()
def discriminator_scores(checkpoint: str | Path, images: torch.Tensor, labels: torch.Tensor,
                         device: str | torch.device = "auto", batch_size: int = 1024) -> torch.Tensor:
    """D's raw output (N,) on the CPU for images (N, C, H, W) in [-1, 1]; higher means 'looks real for its class'."""
    discriminator = load_discriminator(checkpoint, device)
    shape: ImageShape = discriminator.shape
    if images.dim() != 4 or tuple(images.shape[1:]) != (shape.channels, shape.height, shape.width):
        raise DataError(
            f"checkpoint {checkpoint} scores images of shape (N, {shape.channels}, {shape.height}, {shape.width}), "
            f"got {tuple(images.shape)}"
        )
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if len(labels) != len(images):
        raise DataError(f"got {len(images)} images but {len(labels)} labels")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= shape.num_classes):
        raise DataError(f"labels must lie in 0..{shape.num_classes - 1} for checkpoint {checkpoint}")
    target = next(discriminator.parameters()).device
    scores = [
        discriminator(images[i : i + batch_size].float().to(target), labels[i : i + batch_size].to(target))[0].float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(scores) if scores else torch.empty(0)

