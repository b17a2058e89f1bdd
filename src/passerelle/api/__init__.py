"""HTTP: the Segment-Spec collector and the REST API behind the web app, in one server."""

from passerelle.lazy import lazy_exports

# Lazy: the job kinds import ``api.inputs`` and the app imports the job kinds, so importing
# the app from here would make a circle.
_EXPORTS = {"app": "create_server"}
__all__ = ["create_server"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
