"""Personalisation: offers and placements, decisions for one person (served from a
materialised store) and for a whole audience (in SQL). See docs/personalisation.md."""

from passerelle.personalize.context import ContextError, PersonalizeError
from passerelle.personalize.decide import Decision, Message, decide
from passerelle.personalize.service import definitions, open_store, refresh_decision_store
from passerelle.personalize.store import DecisionStore, warehouse_store

__all__ = ["ContextError", "Decision", "DecisionStore", "Message", "PersonalizeError",
           "decide", "definitions", "open_store", "refresh_decision_store", "warehouse_store"]
