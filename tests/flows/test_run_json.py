"""run.json has one shape whichever entry point ran a stage: the CLI commands and the pipeline flow
both go through the stage runners of `ganaug.runner`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from conftest import TINY_CONFIG
from typer.testing import CliRunner

from ganaug.cli import app

STAGES = ("ingest", "train_gan", "generate", "evaluate", "search")


def _shape(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "keys": sorted(entry),
        "inputs": sorted(entry["inputs"]),
        "outputs": sorted(entry["outputs"]),
        "result": sorted(entry["notes"]["result"]),
    }


def test_run_json_has_one_shape_whichever_entry_point(first_run: Any, tmp_path: Path) -> None:
    _, cfg = first_run
    flow_manifest = json.loads((Path(cfg.orchestration.runs_root) / "first" / "run.json").read_text())
    runs = tmp_path / "runs"
    commands = {
        "ingest": ["--runs-root", str(runs), "--run-id", "cli"],
        "train": ["--run-dir", str(runs / "cli")],
        "generate": ["--run-dir", str(runs / "cli")],
        "evaluate": ["--run-dir", str(runs / "cli")],
        "search": ["--run-dir", str(runs / "cli")],
    }
    sections = {"ingest": "ingest", "train": "gan", "generate": "generate", "evaluate": "evaluate", "search": "search"}
    for command, options in commands.items():
        config = tmp_path / f"{command}.yaml"
        config.write_text(yaml.safe_dump(TINY_CONFIG[sections[command]]))
        result = CliRunner().invoke(app, [command, "-c", str(config), *options])
        assert result.exit_code == 0, (command, result.output)
    cli_manifest = json.loads((runs / "cli" / "run.json").read_text())
    for stage in STAGES:
        flow_entry, cli_entry = flow_manifest["stages"][stage], cli_manifest["stages"][stage]
        assert flow_entry["status"] == cli_entry["status"] == "completed"
        flow_shape, cli_shape = _shape(flow_entry), _shape(cli_entry)
        assert flow_shape == cli_shape, stage
