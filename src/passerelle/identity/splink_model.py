"""The trained model's file: Splink's settings dict plus Passerelle's fingerprint of the
``identity.yml`` it was trained for; read back only when that fingerprint still matches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splink import block_on

from passerelle.errors import PasserelleError
from passerelle.identity import splink_settings as ss
from passerelle.project.identity_models import Probabilistic

RETRAIN = "Retrain the model with `passerelle identity train`."


class ModelError(PasserelleError, ValueError):
    """The saved Splink model cannot be used with this identity.yml."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    trained: bool  # False: the saved model was reused, no training ran
    fingerprint: str
    records: int  # records given to training (after the signature pre-pass)
    seconds: float


def load_model(model_path: Path, config: Probabilistic) -> dict:
    """The Splink settings dict saved at ``model_path``, checked against ``config``."""
    try:
        data = json.loads(model_path.read_text(encoding="utf-8"))
        meta = data.pop("passerelle")
        saved = meta["fingerprint"]
        levels = [lv for c in data["comparisons"] for lv in c["comparison_levels"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"The Splink model {model_path} is unreadable or corrupt ({exc}).",
                         RETRAIN) from exc
    if saved != ss.fingerprint(config):
        raise ModelError(
            f"The Splink model {model_path} was trained for other comparisons or blocking "
            "rules (EM's) than identity.yml now declares.", RETRAIN)
    if not any(lv.get("m_probability") is not None for lv in levels):
        raise ModelError(f"The Splink model {model_path} was never trained.", RETRAIN)
    # Splink keeps the gamma_ and mw_ columns (the evidence) only with these
    data["retain_matching_columns"] = data["retain_intermediate_calculation_columns"] = True
    # the prediction rules are identity.yml's (or those `blocking: auto` chose), not the
    # ones in force when the model was trained
    data["blocking_rules_to_generate_predictions"] = [
        block_on(*rule).create_blocking_rule_dict(data.get("sql_dialect") or "duckdb")
        for rule in config.blocking_rules]
    return data


def _save_model(model: dict, model_path: Path, config: Probabilistic, info: dict) -> None:
    model_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**model, "passerelle": {"fingerprint": ss.fingerprint(config), **info}}
    tmp = model_path.with_suffix(model_path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(model_path)



def _probability(value: Any) -> float:
    """A saved m or u: Splink writes a text marker for a level never observed (1e-6)."""
    return float(value) if isinstance(value, int | float) else 1e-6



def _fill_unobserved(model: dict, max_pairs: int) -> dict:
    """Give a value to the probabilities training could not estimate, instead of the
    arbitrary defaults Splink would use at prediction.

    - a u never observed among ``max_pairs`` random pairs (two strangers at the same
      address in a big file) is below 1/max_pairs: it takes that bound;
    - an m never observed in EM (no birth-date typo in the data) carries no evidence
      either way: it takes the level's u (match weight 0).
    """
    for comparison in model["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            u = level.get("u_probability")
            if not isinstance(u, int | float) or u <= 0:
                level["u_probability"] = u = 1.0 / max_pairs
            if not isinstance(level.get("m_probability"), int | float):
                level["m_probability"] = u
        _postcode_without_street(comparison["comparison_levels"])
    return model


def _postcode_without_street(levels: list[dict]) -> None:
    """Give the "same postcode, no street to compare" level the likelihood ratio of an
    equal postcode among the pairs whose streets could be compared.

    EM cannot learn that level: the records without a street line (sign-up forms) have no
    birth date either, so they only meet in the name blocking rules, where the postcode
    comparison is not estimated (its household level reads the first name). A missing
    street says nothing about the person, so an equal postcode then weighs what it weighs
    when streets are compared, whatever they say: m / u = (sum of m) / (sum of u) over the
    levels that compare them.
    """
    by_label = {level.get("label_for_charts"): level for level in levels}
    if ss.NO_STREET not in by_label:
        return
    compared = [by_label[label] for label in (ss.HOUSEHOLD, ss.SAME_ADDRESS, ss.OTHER_STREET)
                if label in by_label]
    ratio = (sum(_probability(lv["m_probability"]) for lv in compared)
             / sum(_probability(lv["u_probability"]) for lv in compared))
    level = by_label[ss.NO_STREET]
    level["m_probability"] = min(1.0, _probability(level["u_probability"]) * ratio)
