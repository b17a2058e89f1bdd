"""Staging: raw tables mapped to the standard model, normalised, with quarantine."""

from passerelle.staging.stage import (
    CompiledStaging,
    StageResult,
    compile_staging,
    stage_source,
    stg_schema,
)

__all__ = ["CompiledStaging", "StageResult", "compile_staging", "stage_source", "stg_schema"]
