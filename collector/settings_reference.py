"""Every environment variable a settings model reads, derived from the model itself.

Used to generate the README's configuration reference and to check that the Compose file
sets only variables the code reads, so neither can drift from the code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class EnvVar:
    name: str
    type: str
    default: str
    required: bool
    description: str


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pydantic.types.", "")


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return ""
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    try:
        return json.dumps(value, default=str) if not isinstance(value, str) else value
    except TypeError:
        return str(value)


def _names(prefix: str, name: str, field: FieldInfo, case_sensitive: bool) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
    elif isinstance(alias, str):
        names = [alias]
    elif field.alias:
        names = [field.alias]
    else:
        names = [f"{prefix}{name}"]
    return names if case_sensitive else [n.upper() for n in names]


def env_vars(model: type[BaseModel], prefix: str | None = None) -> list[EnvVar]:
    """The variables `model` (a pydantic-settings class) reads, nested models flattened with their delimiter."""
    config = model.model_config
    if prefix is None:
        prefix = str(config.get("env_prefix", ""))
    delimiter = config.get("env_nested_delimiter") or ""
    case_sensitive = bool(config.get("case_sensitive", False))
    out: list[EnvVar] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if delimiter and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested_prefix = f"{prefix}{name}{delimiter}"
            for var in env_vars(annotation, nested_prefix):
                out.append(var if case_sensitive else replace(var, name=var.name.upper()))
            continue
        for env_name in _names(prefix, name, field, case_sensitive):
            out.append(EnvVar(
                name=env_name,
                type=_type_name(annotation),
                default=_default(field) if field.default is not PydanticUndefined or field.default_factory else "",
                required=field.is_required(),
                description=(field.description or "").strip(),
            ))
    return out


def markdown_table(model: type[BaseModel]) -> str:
    rows = ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
    for var in env_vars(model):
        default = "**required**" if var.required else (f"`{var.default}`" if var.default else "")
        rows.append(f"| `{var.name}` | {var.type} | {default} | {var.description.replace('|', '/')} |")
    return "\n".join(rows)
