"""The one string type of API inputs: every query, path and body string goes through it.

Control characters (NUL first of all) and lone surrogates are refused at the edge, where the
error can name the field (422), rather than deep in the warehouse driver (a 500); so are
strings longer than any identifier, filter or note needs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic_core import core_schema

MAX_TEXT = 500  # ids, names, e-mails, record references
MAX_NOTE = 2000  # free text: a pin's reason, a request's reason
MAX_FILTER = 4000  # a metric filter (its depth and size have their own limits)
MAX_DOCUMENT = 200_000  # a whole project file (identity.yml)

# Tab, line feed and carriage return are allowed (notes, YAML); every other C0 control, DEL
# and lone surrogates (not UTF-8) are not.
_FORBIDDEN = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
PATTERN = f"^[^{_FORBIDDEN}]*$"
_BAD = re.compile(f"[{_FORBIDDEN}\ud800-\udfff]")


def _clean(value: str) -> str:
    bad = _BAD.search(value)
    if bad:
        raise ValueError(f"contains the control character U+{ord(bad.group()):04X} at "
                         f"position {bad.start()}; send printable text only")
    return value


class _Printable:
    """Validation with a message that says which character; the pattern is published in
    the OpenAPI schema so that clients (and schemathesis) know the rule."""

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_clean, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "pattern": PATTERN}


Text = Annotated[str, StringConstraints(max_length=MAX_TEXT), _Printable()]
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE), _Printable()]
Filter = Annotated[str, StringConstraints(max_length=MAX_FILTER), _Printable()]
Document = Annotated[str, StringConstraints(max_length=MAX_DOCUMENT), _Printable()]
