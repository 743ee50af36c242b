"""The base every config model shares: unknown keys refused, frozen, blank means default."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.fields import FieldInfo


class _Model(BaseModel):
    # validate_by_name: models whose YAML keys are Python keywords or builtins (``not``, ``all``,
    # ``any``) use aliases; code may build them with either spelling.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        """``poll:`` with every line below commented out is YAML null: treat it as "not set"."""
        if not isinstance(data, dict):
            return data
        fields = yaml_fields(cls)
        return {
            key: value
            for key, value in data.items()
            if not (value is None and key in fields and not fields[key].is_required())
        }


def yaml_key(name: str, field: FieldInfo) -> str:
    """The key a store owner writes for a field: its alias if it has one."""
    return field.alias or name


def yaml_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """A model's fields by the key written in YAML (and by Python name, for code-built data)."""
    found: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        found[yaml_key(name, field)] = field
        found.setdefault(name, field)
    return found
