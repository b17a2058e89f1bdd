"""The order test files start in: the costliest first (longest processing time first).

With `--dist loadfile` pytest-xdist hands whole files to its two workers in the order they were
collected, so a long file collected last ends the run alone on one worker while the other is
idle. `tests/durations.json` holds each file's measured seconds (setup, call and teardown of its
tests, summed); the conftest sorts the collected files by it, costliest first (a file missing
from the table counts its tests at the table's mean seconds a test). Refresh the table after a
full run that wrote a JUnit report::

    pytest -p no:cacheprovider --junitxml=/tmp/junit.xml
    python tests/suite_order.py /tmp/junit.xml

The table only orders the files: a stale or missing entry makes the run slower, never wrong.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

TABLE = Path(__file__).with_name("durations.json")


def file_costs(junit_xml: Path) -> dict[str, float]:
    """Seconds per test file (``tests/test_x.py``) in a JUnit report, summed over its tests."""
    costs: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).iter("testcase"):
        module = case.get("classname", "").split(".")
        name = next((part for part in module if part.startswith("test_")), None)
        if name is not None:
            costs[f"tests/{name}.py"] += float(case.get("time") or 0)
    return {name: round(seconds, 1) for name, seconds in sorted(costs.items())}


def read_table(path: Path = TABLE) -> dict[str, float]:
    if not path.exists():
        return {}
    return {name: float(seconds) for name, seconds in json.loads(path.read_text()).items()}


def costliest_first(items: list[pytest.Item], table: dict[str, float]) -> list[pytest.Item]:
    """The items grouped by file, the files costliest first; tests keep their order within
    their file, files of equal cost their collection order."""
    by_file: dict[str, list[pytest.Item]] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    tests = sum(1 for item in items if item.nodeid.split("::", 1)[0] in table)
    known = [seconds for name, seconds in table.items() if name in by_file]
    per_test = sum(known) / tests if tests else 1.0

    def cost(name: str) -> float:
        return table[name] if name in table else per_test * len(by_file[name])

    ordered = sorted(by_file, key=cost, reverse=True)  # sorted() is stable: ties keep order
    return [item for name in ordered for item in by_file[name]]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python tests/suite_order.py JUNIT_XML  (from a full run with "
              "--junitxml=JUNIT_XML)", file=sys.stderr)
        return 2
    costs = file_costs(Path(argv[0]))
    if not costs:
        print(f"{argv[0]} has no test cases: nothing written", file=sys.stderr)
        return 1
    TABLE.write_text(json.dumps(costs, indent=1) + "\n")
    print(f"{TABLE}: {len(costs)} files, {sum(costs.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
