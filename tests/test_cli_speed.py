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
