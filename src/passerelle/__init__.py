"""Passerelle: a warehouse-native customer data platform shared by marketing and IT.

>>> import passerelle
>>> project = passerelle.open("passerelle-demo")  # doctest: +SKIP
>>> result = project.run()  # doctest: +SKIP
"""

from passerelle.core import Project
from passerelle.core import open_project as open
from passerelle.errors import PasserelleError, ProjectError

__version__ = "0.1.0"
__all__ = ["PasserelleError", "Project", "ProjectError", "__version__", "open"]
