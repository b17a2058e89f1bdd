"""Splink's warnings said in the project's terms, once each, never the word "warning" twice."""

from __future__ import annotations

import logging

from passerelle.identity.splink_session import _ToReporter, translate
from passerelle.reporter import SilentReporter

RAW_M = ("WARNING:\nLevel nickname on comparison first_name not observed in dataset, "
         "unable to train m value\n")


def test_unobserved_levels_explained():
    assert translate(RAW_M) == (
        'No likely match in the training sample had "nickname" on first_name: that level '
        "weighs nothing (neither for nor against) until a retraining sees one.")
    u = translate(RAW_M.replace("train m", "train u").replace("nickname", "same address"))
    assert u.startswith('No random pair in the training sample had "same address" on '
                        "first_name") and "1 / max_pairs" in u
    other = translate("Warning: No null level found for comparison x.")
    assert other == "Splink: No null level found for comparison x."


def test_each_message_once(monkeypatch):
    said: list[str] = []
    reporter = SilentReporter()
    monkeypatch.setattr(reporter, "warning", said.append)
    handler = _ToReporter(reporter)
    logger = logging.getLogger("splink.test_messages")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(3):
            logger.warning(RAW_M)
        logger.warning("[EM sampling] reason")
    finally:
        logger.removeHandler(handler)
    assert said == [translate(RAW_M)]
    assert "warning" not in said[0].lower()
