"""Governance: who may do what, and the proof of what was done.

The application database (users, API tokens, sessions, the audit log, sign-in attempts),
permissions and roles, authentication of people and tokens. docs/governance.md is the guide
for IT.
"""
