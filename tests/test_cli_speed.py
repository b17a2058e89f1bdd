"""Commands stay quick: the modules a read-only command needs do not import the heavy
libraries (scipy, pandas via lifetimes, httpx, splink) that only computing steps use; and a
long step is never silent, even in a log."""

from __future__ import annotations

import subprocess
import sys
import time

from rich.console import Console

from passerelle import reporter as reporter_module

HEAVY = ("scipy", "lifetimes", "httpx", "splink", "autograd")


def imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          "print(' '.join(sorted(m for m in sys.modules if '.' not in m)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_read_only_paths_import_no_estimator_or_network_client():
    # what validate, status, segment count, profile and glossary import
    loaded = imported_after(
        "import passerelle.cli, passerelle.core, passerelle.render\n"
        "import passerelle.segments.service, passerelle.identity.service\n"
        "import passerelle.project.destinations_models, passerelle.traits.glossary\n"
        "from passerelle.segments import count, trait_kinds\n"
        "from passerelle.measure import assign")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_help_imports_no_engine():
    loaded = imported_after("import passerelle.cli")
    assert not loaded & {"ibis", "duckdb", "pyarrow", "pydantic", *HEAVY}


def test_lazy_package_exports_still_resolve():
    from passerelle import activation, measure, segments, traits

    assert measure.wilson(5, 10).low > 0  # scipy imported on use
    assert callable(segments.build_audience) and callable(traits.fit_bgnbd)
    assert callable(activation.sync_webhook) and "activate" in activation.__all__
    assert set(measure.__all__) <= set(dir(measure))


def test_a_long_step_says_so_in_a_log_while_it_works(monkeypatch):
    monkeypatch.setattr(reporter_module, "STILL_WORKING_AFTER_S", 0.05)
    console = Console(record=True, width=80, force_terminal=False)
    rep = reporter_module.RichReporter(console)
    with rep.step("Identity"):
        time.sleep(0.3)
        assert "… Identity" in console.export_text(clear=False)  # before the step ends
    with rep.step("quick"):
        pass
    text = console.export_text()
    assert "✓ Identity" in text and "… quick" not in text


def test_offline_validation_opens_no_warehouse_library(tmp_path):
    """`validate --offline` parses and type-checks: no pyarrow, numpy, DuckDB (or pandas)."""
    from passerelle.project.starter import init_project

    init_project(tmp_path / "p")
    (tmp_path / "p" / "traits").mkdir()
    (tmp_path / "p" / "traits" / "t.yml").write_text(
        "traits:\n  - {name: spend, description: d, owner: o, type: aggregate, entity: orders,"
        " function: sum, column: amount, where: \"status = 'paid'\"}\n"
        "  - {name: clv, description: d, owner: o, type: builtin, builtin: clv}\n")
    loaded = imported_after(
        "from passerelle.core import validate_folder\n"
        f"d, problems = validate_folder({str(tmp_path / 'p')!r}, connect=False)\n"
        "assert d is not None and not problems.errors, problems.items")
    assert "ibis" in loaded  # the trait's filter was type-checked
    assert not loaded & {"pyarrow", "numpy", "duckdb", "pandas", *HEAVY}


def test_reading_the_warehouse_does_not_import_pandas(tmp_path):
    loaded = imported_after(
        "from passerelle.engines.duckdb import DuckDBEngine\n"
        f"e = DuckDBEngine({str(tmp_path / 'w.duckdb')!r})\n"
        "import ibis\n"
        "e.con.con.execute('CREATE TABLE t AS SELECT 1::BIGINT AS a UNION ALL SELECT 2')\n"
        "t = e.table('t')\n"
        "rows = e.to_arrow(t.mutate(n=ibis.null()))\n"
        "assert rows.column('n').null_count == 2 and str(rows.schema.field('n').type) == 'null'\n"
        "assert e.to_arrow(t.a.max()).as_py() == 2 and e.to_arrow(t.a).to_pylist() == [1, 2]\n"
        "e.close()")
    assert "pandas" not in loaded
