"""Probabilistic matching with Splink, on the pipeline's own engine.

Splink (Fellegi-Sunter) scores candidate pairs of customer records. The work is split by
concept; this module gathers their public names:

- :mod:`~passerelle.identity.splink_settings`: comparisons, levels, blocking (the model's shape);
- :mod:`~passerelle.identity.splink_input`: the prepared columns and the signature pre-pass;
- :mod:`~passerelle.identity.splink_session`: Splink's backend on the project's engine;
- :mod:`~passerelle.identity.splink_training`: estimating the model;
- :mod:`~passerelle.identity.splink_model`: the saved model file;
- :mod:`~passerelle.identity.splink_prediction`: scoring pairs into ``identity_edges``.
"""

from __future__ import annotations

from passerelle.identity.splink_input import (
    INPUT_TABLE,
    MEMBERS_TABLE,
    MIN_RECORDS,
    NEW_TABLE,
    PAIR_TABLES,
    TF_TABLE,
    TRAIN_TABLE,
    _drop_own_tables,
    _materialise_input,
    last_name_from_email,
    names_from_email,
    node_expr,
    prepare,
    signatures,
    term_frequencies,
    with_term_frequencies,
)
from passerelle.identity.splink_model import (
    RETRAIN,
    ModelError,
    ModelInfo,
    _fill_unobserved,
    _postcode_without_street,
    load_model,
)
from passerelle.identity.splink_prediction import (
    EDGE_SCHEMA,
    EDGES_TABLE,
    MatchResult,
    explain_pair,
    field_weight,
    keep_new,
    match,
    match_new,
    probabilistic_edges,
)
from passerelle.identity.splink_session import (
    SPLINK_BACKENDS,
    _db_api,
    _postgres_api,
    _splink_session,
    drop_splink_tables,
)
from passerelle.identity.splink_training import (
    MIN_KNOWN_PAIRS,
    PRIOR_RECALL,
    TRAINING_RECORDS,
    _prior_recall,
    train,
)
from passerelle.identity.tables import KEY_EDGES

__all__ = [
    "EDGES_TABLE", "EDGE_SCHEMA", "INPUT_TABLE", "KEY_EDGES", "MEMBERS_TABLE", "MIN_KNOWN_PAIRS",
    "MIN_RECORDS", "NEW_TABLE", "PAIR_TABLES", "PRIOR_RECALL", "RETRAIN", "SPLINK_BACKENDS",
    "TF_TABLE", "TRAINING_RECORDS", "TRAIN_TABLE", "MatchResult", "ModelError", "ModelInfo",
    "_db_api", "_drop_own_tables", "_fill_unobserved", "_materialise_input",
    "_postcode_without_street", "_postgres_api", "_prior_recall", "_splink_session",
    "drop_splink_tables", "explain_pair", "field_weight", "keep_new", "last_name_from_email",
    "load_model", "match", "match_new", "names_from_email", "node_expr", "prepare",
    "probabilistic_edges", "signatures", "term_frequencies", "train", "with_term_frequencies",
]
