"""The order test files start in (tests/suite_order.py): costliest first, whole files."""

from __future__ import annotations

from dataclasses import dataclass

from suite_order import costliest_first, file_costs


@dataclass
class Item:
    nodeid: str


def test_files_go_costliest_first_and_keep_their_tests_in_order():
    items = [Item(n) for n in ("tests/test_a.py::one", "tests/test_b.py::one",
                               "tests/test_a.py::two", "tests/test_c.py::one",
                               "tests/test_d.py::one", "tests/test_d.py::two[x]")]
    table = {"tests/test_a.py": 1.0, "tests/test_b.py": 9.0, "tests/test_c.py": 1.0}
    ordered = [i.nodeid for i in costliest_first(items, table)]
    # test_d is not in the table: 2 tests at the table's mean (11 s / 4 tests a test)
    assert ordered == ["tests/test_b.py::one", "tests/test_d.py::one",
                       "tests/test_d.py::two[x]", "tests/test_a.py::one",
                       "tests/test_a.py::two", "tests/test_c.py::one"]


def test_the_table_is_read_from_a_junit_report(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_a" name="t1" time="1.25"/>'
        '<testcase classname="tests.test_a.TestThing" name="t2" time="2.5"/>'
        '<testcase classname="tests.test_b" name="t1" time="0.05"/>'
        "</testsuite></testsuites>")
    assert file_costs(report) == {"tests/test_a.py": 3.8, "tests/test_b.py": 0.1}

