"""HTTP: the Segment-Spec collector and the REST API behind the web app, in one server."""

from passerelle.api.app import create_server

__all__ = ["create_server"]
