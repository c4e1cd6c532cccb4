"""When records are due, and how the best-checkpoint tracker chooses best.pt."""

from __future__ import annotations

from pathlib import Path

from ganaug.gan.artifacts import GanPaths
from ganaug.gan.config import GanConfig
from ganaug.gan.tracking import BestCheckpoint, Due, due_at


def test_records_due_follow_their_intervals_and_all_come_at_the_final_step() -> None:
    cfg = GanConfig(steps=1000, metrics_every=50, monitor_every=250, checkpoint_every=300, grid_every=400)
    assert not due_at(49, cfg, monitoring=True).anything
    assert due_at(50, cfg, monitoring=True) == Due(metrics=True, monitor=False, checkpoint=False, periodic=False, grid=False)
    # a collapse reading always comes with a metrics row, even off the metrics interval
    odd = cfg.model_copy(update={"metrics_every": 100, "monitor_every": 250})
    assert due_at(250, odd, monitoring=True) == Due(metrics=True, monitor=True, checkpoint=False, periodic=False, grid=False)
    assert not due_at(250, odd, monitoring=False).anything
    assert due_at(300, cfg, monitoring=True) == Due(metrics=True, monitor=False, checkpoint=True, periodic=True, grid=False)
    assert due_at(400, cfg, monitoring=False) == Due(metrics=True, monitor=False, checkpoint=False, periodic=False, grid=True)
    assert due_at(1000, cfg, monitoring=True) == Due(metrics=True, monitor=True, checkpoint=True, periodic=False, grid=True)
    off = cfg.model_copy(update={"checkpoint_every": None, "grid_every": None, "monitor_every": None})
    assert due_at(1000, off, monitoring=True) == Due(metrics=True, monitor=False, checkpoint=True, periodic=False, grid=True)
    assert not due_at(999, off, monitoring=True).anything


def test_best_tracker_keeps_a_later_step_within_noise_and_drops_a_real_fall(tmp_path: Path) -> None:
    best = BestCheckpoint(GanConfig(), {}, GanPaths.under(tmp_path), val_images=500, record=None)
    assert best.record() is None
    assert best.consider(250, 0.50)
    assert best.consider(500, 0.47)  # 0.03 below the top: within two standard errors on 500 images
    assert best.record() == {"step": 500, "score": 0.47, "top": 0.50}
    assert not best.consider(750, 0.44)  # 0.06 below the top 0.50: a real drop
    assert not best.consider(1000, float("nan"))
    assert best.consider(1250, 0.60)
    assert best.record() == {"step": 1250, "score": 0.60, "top": 0.60}
    assert not best.consider(1500, 0.50)
    assert best.record() == {"step": 1250, "score": 0.60, "top": 0.60}


def test_best_tracker_resumed_from_a_record_continues_its_choice(tmp_path: Path) -> None:
    record = {"step": 500, "score": 0.47, "top": 0.50}
    best = BestCheckpoint(GanConfig(), {}, GanPaths.under(tmp_path), val_images=500, record=record)
    assert not best.consider(750, 0.44)  # compared with the recorded top, not with the recorded score
    assert best.record() == record
    assert best.needs_rewrite(500)  # resumed at the best step and best.pt is missing
    assert not best.needs_rewrite(750)
