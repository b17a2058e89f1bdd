"""Staging: raw tables mapped to the standard model, normalised, with quarantine."""

from passerelle.lazy import lazy_exports

# imported on first use: validating a trait's filter needs the staged types
# (staging.normalize), not the staging machinery and its warehouse libraries
_EXPORTS = {"stage": "CompiledStaging StageResult compile_staging stage_source stg_schema"}
__all__ = sorted(n for names in _EXPORTS.values() for n in names.split())
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
