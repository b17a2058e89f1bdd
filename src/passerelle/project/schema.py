"""JSON Schemas of the project files, generated from the pydantic models (never by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from passerelle.project.destinations_models import DestinationFile
from passerelle.project.identity_models import IdentityConfig
from passerelle.project.metrics_models import MetricsFile
from passerelle.project.models import ChecksFile, ProjectConfig, SourceConfig
from passerelle.project.segments_models import SegmentConfig
from passerelle.project.traits_models import TraitsFile

SCHEMAS = {
    "passerelle": ProjectConfig,
    "identity": IdentityConfig,
    "source": SourceConfig,
    "checks": ChecksFile,
    "metrics": MetricsFile,
    "traits": TraitsFile,
    "destination": DestinationFile,
    "segment": SegmentConfig,
}


def json_schema(kind: str) -> dict[str, Any]:
    schema = SCHEMAS[kind].model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in SCHEMAS:
        path = directory / f"{kind}.schema.json"
        path.write_text(json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
