"""Base model and file loading shared by every stage's pydantic config."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ganaug.errors import ConfigError

ModelT = TypeVar("ModelT", bound="StrictModel")


class StrictModel(BaseModel):
    """A config model: unknown keys are rejected, values validated on assignment, no booleans for numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `steps: true` as 1; a typo like that must fail loudly instead
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if _wants_number(annotation):
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value

    def config_hash(self) -> str:
        """Stable sha256 of the config's JSON form (used in cache keys and manifests)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def format_validation_error(err: ValidationError, where: str) -> str:
    """One readable line per problem, naming the option path (e.g. `ingest.train_fraction`)."""
    lines = []
    for item in err.errors():
        option = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown option (check the spelling)"
        lines.append(f"{option}: {message}" if option else message)
    return f"invalid configuration in {where}: " + "; ".join(lines)


def _wants_number(annotation: Any) -> bool:
    """Whether a field takes int/float (alone or with None) and not bool."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    options = tuple(typing.get_args(o)[0] if typing.get_origin(o) is typing.Annotated else o for o in options)
    return bool(set(options) & {int, float}) and bool not in options


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice in one mapping (the later one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def validate_config(model: type[ModelT], data: dict[str, Any], where: str) -> ModelT:
    """Build a config from a mapping, turning pydantic errors into a `ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping from `path`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        reason = " ".join(str(err).split())  # one line: YAML errors span several
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options, not {type(data).__name__}")
    return data


def load_config(model: type[ModelT], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ModelT:
    """Config from an optional YAML/JSON file, then CLI overrides (None values are ignored)."""
    data: dict[str, Any] = read_config_file(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return validate_config(model, data, str(path) if path is not None else "options")
