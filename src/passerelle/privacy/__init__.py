"""Data-subject rights under the GDPR: access, erasure, and the register of requests.

Public API::

    access_report(project, engine, person_id, requested_by=None) -> dict
    person_of(project, engine, subject, records=None) -> str
    preview_erasure(project, engine, person_id, records=None) -> dict
    erase_person(project, engine, person_id, requested_by=..., reason=..., records=None,
                 rewrite_exports=False, vacuum_full=False) -> dict
    list_requests(engine, limit=100) -> list[dict]
    apply_to_sources(engine, sources, request_id)   # the suppression step of `passerelle run`

Requests name a person by id: resolve any identifier first with
:func:`passerelle.identity.service.person_id_of`. See docs/privacy.md.
"""

from __future__ import annotations

from passerelle.privacy.access import access_report
from passerelle.privacy.audit import list_requests
from passerelle.privacy.erase import erase_person, preview_erasure
from passerelle.privacy.footprint import SeveralPeople, person_of
from passerelle.privacy.suppressions import apply_to_sources, has_suppressions

__all__ = ["SeveralPeople", "access_report", "apply_to_sources", "erase_person",
           "has_suppressions", "list_requests", "person_of", "preview_erasure"]
