"""Consent by purpose: every statement a person made about a purpose, with its proof, and
the current state per person and purpose (see docs/privacy.md, "Consent by purpose").

- :func:`build_consents` (the pipeline's ``consent`` step) writes ``consent_statements``
  and ``consents``;
- :func:`granted` is the one filter every exit uses: who granted a purpose.
"""

from passerelle.consent.build import CONSENT_STATEMENTS, CONSENTS, ConsentSummary, build_consents
from passerelle.consent.grants import granted, granted_people

__all__ = ["CONSENTS", "CONSENT_STATEMENTS", "ConsentSummary", "build_consents", "granted",
           "granted_people"]
