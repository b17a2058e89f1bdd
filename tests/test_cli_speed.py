"""Commands stay quick: the modules a read-only command needs do not import the heavy
libraries (scipy, pandas via lifetimes, httpx, splink) that only computing steps use;
`--help` imports no warehouse library; status, checks, quarantine, segment count and status,
audience status, experiments list, campaigns, glossary and validate read a DuckDB warehouse
(and the project's files) without Ibis, sqlglot, pyarrow, numpy or pandas once they have
kept what they compile, with the same output; and a long step is never silent, even in a
log."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import duckdb
import pytest
from rich.console import Console

from conftest import copy_demo
from passerelle import reporter as reporter_module
from test_cli import cli, cli_env

HEAVY = ("scipy", "lifetimes", "httpx", "splink", "autograd")
ENGINE_LAYER = ("ibis", "sqlglot", "pyarrow", "numpy", "pandas")


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


def command(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """A command run as a user runs it, and the top-level modules its process imported."""
    code = ("import sys\nfrom passerelle.cli import main\n"
            "try:\n    main()\nfinally:\n    sys.stderr.write('\\nMODULES ' + ' '.join(sorted("
            "m for m in sys.modules if '.' not in m)))\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=cli_env(100))
    stderr, _, modules = proc.stderr.rpartition("\nMODULES ")
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, stderr), \
        set(modules.split())


def test_help_imports_no_engine():
    loaded = imported_after("import passerelle.cli")
    assert not loaded & {"ibis", "duckdb", "pyarrow", "pydantic", *HEAVY}
    # (Typer itself converts a command's options with pydantic)
    for args, light in ((("--help",), {"pydantic", "yaml"}), (("segment", "--help"), set())):
        shown, loaded = command(*args)
        assert shown.returncode == 0 and "Usage" in shown.stdout, shown.stderr
        assert not loaded & {"duckdb", *light, *ENGINE_LAYER, *HEAVY}, \
            loaded & {"duckdb", *light, *ENGINE_LAYER, *HEAVY}


@pytest.fixture(scope="module")
def ran_starter(tmp_path_factory):
    project = tmp_path_factory.mktemp("quick") / "shop"
    assert cli("init", str(project)).returncode == 0
    run = cli("run", "-p", str(project))
    assert run.returncode == 0, run.stdout + run.stderr
    return project


READ_ONLY = (("status",), ("status", "--json", "--limit", "2"), ("checks",),
             ("checks", "--history", "--json"), ("quarantine",),
             ("quarantine", "--sample", "3", "--json"))


def test_read_only_commands_read_without_ibis_once_compiled(ran_starter):
    """The first run compiles each query with Ibis and keeps its SQL; the next ones read the
    warehouse through the duckdb module alone, with the same output."""
    p = ("-p", str(ran_starter))
    for args in READ_ONLY:
        first, _ = command(*args, *p)
        again, loaded = command(*args, *p)
        assert first.returncode == again.returncode == 0, first.stderr + again.stderr
        assert not loaded & {*ENGINE_LAYER, *HEAVY}, (args, loaded & {*ENGINE_LAYER, *HEAVY})
        if "--json" in args:
            assert json.loads(again.stdout) == json.loads(first.stdout)
    assert (ran_starter / ".passerelle" / "compiled-sql.json").is_file()
    assert not list((ran_starter / ".passerelle").glob("*.tmp"))  # written, then renamed


def _ibis_rows(project, table: str) -> list[dict]:
    import passerelle

    with passerelle.open(project) as proj:
        engine = proj.engine
        return json.loads(json.dumps(engine.to_arrow(engine.table(table)).to_pylist(),
                                     default=lambda v: v.isoformat()))


def test_kept_sql_gives_ibis_results_and_follows_the_tables(ran_starter):
    """Rows read without Ibis are the rows Ibis reads (values and types, as JSON); a table
    whose columns changed, or a kept file that is not JSON, makes the SQL compiled again."""
    from passerelle.runlog import RUNS_TABLE
    from passerelle.tables import CHECK_RESULTS_TABLE

    p = ("-p", str(ran_starter))
    history = lambda: command("checks", "--history", "--json", *p)  # noqa: E731
    command("checks", "--history", "--json", *p)
    shown, loaded = history()
    assert "ibis" not in loaded
    key = lambda r: (r["name"], r["checked_at"])  # noqa: E731
    assert sorted(json.loads(shown.stdout), key=key) == sorted(
        _ibis_rows(ran_starter, CHECK_RESULTS_TABLE), key=key)

    # the runs' query names each column: kept, it would not show a new one
    runs = lambda: command("status", "--json", *p)  # noqa: E731
    runs()
    assert "ibis" not in runs()[1]
    with duckdb.connect(str(ran_starter / "warehouse.duckdb")) as con:
        con.execute(f"ALTER TABLE {RUNS_TABLE} ADD COLUMN reviewed_by VARCHAR")
    shown, loaded = runs()
    assert shown.returncode == 0 and "ibis" in loaded  # compiled again, for the new column
    assert all(r["reviewed_by"] is None for r in json.loads(shown.stdout))
    assert "ibis" not in runs()[1]

    kept = ran_starter / ".passerelle" / "compiled-sql.json"
    kept.write_text("{not json", encoding="utf-8")
    shown, loaded = history()
    assert shown.returncode == 0 and "ibis" in loaded and json.loads(shown.stdout)
    assert json.loads(kept.read_text(encoding="utf-8"))["queries"]


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


@pytest.fixture(scope="module")
def quick_demo(shared_demo, tmp_path_factory):
    """A copy of the demo: the commands keep what they compile in its .passerelle/."""
    return copy_demo(shared_demo, tmp_path_factory.mktemp("quick-demo") / "demo").project_dir


DEMO_READS = (("segment", "count", "best_customers", "--json"),
              ("segment", "count", "lapsed_home_buyers", "--json"),
              ("audience", "status", "--json"), ("experiments", "list", "--json"),
              ("campaigns", "--json"), ("glossary", "--json"), ("validate", "--json"),
              ("validate",), ("glossary",), ("campaigns",))


def test_demo_read_only_commands_read_without_ibis_once_kept(quick_demo):
    p = ("-p", str(quick_demo))
    for args in DEMO_READS:
        first, _ = command(*args, *p)
        again, loaded = command(*args, *p)
        assert first.returncode == again.returncode == 0, (args, first.stderr, again.stderr)
        assert not loaded & {*ENGINE_LAYER, *HEAVY}, (args, loaded & {*ENGINE_LAYER, *HEAVY})
        if "--json" in args:
            assert json.loads(again.stdout) == json.loads(first.stdout), args
        else:
            assert again.stdout == first.stdout, args
    kept = quick_demo / ".passerelle"
    assert {"compiled-sql.json", "expression-checks.json", "lineage.json",
            "source-columns.json"} <= {f.name for f in kept.iterdir()}


def test_a_kept_segment_count_takes_the_time_and_follows_the_definitions(demo_copy):
    """The count read from kept SQL is the count Ibis compiles with the time as a literal,
    at any time; a segment edited is compiled again."""
    from datetime import datetime

    import passerelle
    from passerelle.segments import compiler, service

    root = demo_copy.project_dir
    with passerelle.open(root) as project:
        defs = service.definitions(project)
        kinds = service._kinds(project)
        for name in defs.segments:
            for now in (datetime(2026, 12, 7, 22, 0, 0, 123456), datetime(2026, 3, 1, 12)):
                kept = service.count(project, name, now)
                assert kept == compiler.count(project.engine, defs.segments[name],
                                              defs.segments, now, kinds), (name, now)
        counts = {n: service.count(project, n) for n in defs.segments}
    segment = root / "segments" / "best_customers.yml"
    segment.write_text(segment.read_text(encoding="utf-8").replace("value: 300", "value: 30"),
                       encoding="utf-8")
    shown, loaded = command("segment", "count", "best_customers", "--json", "-p", str(root))
    assert shown.returncode == 0 and "ibis" in loaded, shown.stderr  # compiled again
    assert json.loads(shown.stdout)["people"] > counts["best_customers"] > 0


def test_campaigns_compute_again_after_an_edit_of_the_project(demo_copy):
    """The stored results are shown while the data and the files they read are unchanged."""
    root = demo_copy.project_dir
    p = ("-p", str(root))
    command("campaigns", "--json", *p)  # keeps the SQL that reads the stored figure
    stored, loaded = command("campaigns", "--json", *p)
    assert stored.returncode == 0 and "pyarrow" not in loaded, stored.stderr
    config = root / "passerelle.yml"
    config.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")  # edited now
    computed, loaded = command("campaigns", "--json", *p)
    assert computed.returncode == 0 and "ibis" in loaded, computed.stderr
    key = lambda r: (r["campaign_id"] or "", r["channel"] or "")  # noqa: E731
    for a, b in zip(sorted(json.loads(stored.stdout), key=key),
                    sorted(json.loads(computed.stdout), key=key), strict=True):
        assert a.keys() == b.keys() and key(a) == key(b)
        for k, v in a.items():  # sums in another order differ in the last digit
            assert v == pytest.approx(b[k], rel=1e-12, nan_ok=True) if isinstance(v, float) \
                else v == b[k], (k, v, b[k])
    other, loaded = command("campaigns", "--json", "--window", "7", *p)
    assert other.returncode == 0 and "ibis" in loaded  # not the stored window


def test_kept_verdicts_follow_the_expressions(tmp_path):
    """A trait filter edited after its verdict was kept is checked again."""
    from passerelle.core import validate_folder
    from passerelle.project.starter import init_project

    root = tmp_path / "p"
    init_project(root)
    (root / "traits").mkdir()
    trait = root / "traits" / "t.yml"
    text = ("traits:\n  - {name: spend, description: d, owner: o, type: aggregate, "
            "entity: orders, function: sum, column: amount, where: \"status = 'paid'\"}\n")
    trait.write_text(text, encoding="utf-8")
    assert not validate_folder(root, connect=False)[1].errors
    assert (root / ".passerelle" / "expression-checks.json").is_file()
    trait.write_text(text.replace("status = 'paid'", "amount = 'paid' +"), encoding="utf-8")
    problems = validate_folder(root, connect=False)[1]
    assert [p.file for p in problems.errors] == ["traits/t.yml"], problems.items
    loaded = imported_after(
        "from passerelle.core import validate_folder\n"
        f"d, problems = validate_folder({str(root)!r}, connect=False)\n"
        "assert [p.file for p in problems.errors] == ['traits/t.yml'], problems.items")
    assert not loaded & {"ibis", "sqlglot"}  # the verdict of the new text, kept


def test_binding_values_imports_neither_pandas_nor_numpy_and_leaves_them_importable(tmp_path):
    loaded = imported_after(
        "from passerelle.engines.quick import DuckDBFile, _execute\n"
        f"f = DuckDBFile({str(tmp_path / 'w.duckdb')!r})\n"
        "entry = {'sql': 'SELECT CAST($p0 AS TIMESTAMP) AS t, $p1 AS s', "
        "'order': [['t', None], ['s', None]]}\n"
        "cols, rows = _execute(f.connection, entry, {'t': '2026-01-02 03:04:05.5', 's': 'x'})\n"
        "assert cols == ['t', 's'] and str(rows[0]['t']) == '2026-01-02 03:04:05.500000'\n"
        "import sys\nassert 'pandas' not in sys.modules and 'numpy' not in sys.modules\n"
        "import pandas as pd\n"
        "assert f.connection.execute('SELECT ?', [pd.Timestamp('2026-01-01')]).fetchall()")
    assert "pandas" in loaded  # imported afterwards, on purpose
