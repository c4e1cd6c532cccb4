"""Stage configurations (pydantic), re-exported in one place.

Every field has a default, a range and a one-line description; unknown keys are rejected.
Each stage's config lives next to its code; the pipeline's `PipelineConfig` and
`OrchestrationConfig` live in `ganaug.pipeline` (which imports every stage).
"""

from __future__ import annotations

from ganaug.configbase import StrictModel, load_config, read_config_file, validate_config
from ganaug.data.config import IngestConfig, IngestSource

__all__ = ["IngestConfig", "IngestSource", "StrictModel", "load_config", "read_config_file", "validate_config"]
