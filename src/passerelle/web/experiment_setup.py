"""Experiment set-up from the web app (issue 17, page 4): the form under the sample-size
calculator writes ``experiments/NAME.yml`` in the language IT reviews in git
(:mod:`passerelle.project.experiments_models`), checked by the project's own loader first.

The form's fields are plain text (the page shows them back as typed); this module turns
them into the file's document, checks it as the CLI would read it, refuses to replace an
existing file unless asked, and writes it whole (a reader never sees half a file)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from passerelle.core import Project
from passerelle.errors import Problem, Problems
from passerelle.project.paths import confine

MAX_VARIANTS = 4
MAX_TEXT = 500
METRIC_TYPES = ("conversion", "revenue", "orders")
# Messages shown beside the form (their French is in i18n_setup.py).
NOT_A_NUMBER = "“%(text)s” is not a number."
NO_SEGMENT = "There is no segment named “%(name)s”."
TOO_FEW_VARIANTS = "An experiment needs at least two variants, the first one is the control."
ELSEWHERE = ("The experiment “%(name)s” is defined in %(file)s: edit it there, or choose "
             "another name.")
EXISTS = ("The file experiments/%(name)s.yml exists already: tick “Replace the existing file” "
          "to replace it.")
BAD_DATE = "The start date “%(text)s” is not a date (YYYY-MM-DD)."
MESSAGES = (NOT_A_NUMBER, NO_SEGMENT, TOO_FEW_VARIANTS, ELSEWHERE, EXISTS, BAD_DATE)


class SetupError(ValueError):
    """A value of the form that cannot go into the file: ``message`` is the English message
    id the page translates, filled with ``values``."""

    def __init__(self, message: str, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message, self.values = message, values


@dataclass
class SetupOutcome:
    saved: bool
    path: str = ""
    problems: list[Problem] = field(default_factory=list)
    needs_confirmation: bool = False  # the file exists and "overwrite" was not ticked


def initial(fields: Mapping[str, str]) -> dict[str, str]:
    """The form's values as typed, cut to their limits (the page shows them back)."""
    keys = ("name", "description", "hypothesis", "owner", "audience", "metric_name",
            "metric_type", "window_days", "mde", "planned_people", "start", "overwrite",
            *(f"v{i}_{part}" for i in range(MAX_VARIANTS) for part in ("name", "weight")))
    return {k: fields.get(k, "").strip()[:MAX_TEXT] for k in keys}


def prefilled(calculator: Mapping[str, str], size: Mapping[str, int] | None,
              owner: str) -> dict[str, str]:
    """A blank set-up form carrying the calculator's figures: its minimum detectable effect
    (a conversion's, relative as the file writes it), its sample size and its split."""
    share = calculator.get("variant_share", "50").strip() or "50"
    try:
        control = f"{100 - float(share.replace(',', '.')):g}"
    except ValueError:
        control, share = "50", "50"
    conversion = calculator.get("metric") == "conversion"
    return initial({"owner": owner, "metric_type": "conversion" if conversion else "revenue",
                    "metric_name": "conversion_14d" if conversion else "revenue_14d",
                    "window_days": "14", "mde": calculator.get("mde", "") if conversion else "",
                    "planned_people": str(size["total"]) if size else "",
                    "v0_name": "control", "v0_weight": control,
                    "v1_name": "treatment", "v1_weight": share})


def _number(text: str) -> float | None:
    text = text.replace(",", ".").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SetupError(NOT_A_NUMBER, text=text[:30]) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SetupError(NOT_A_NUMBER, text=text[:30])
    return value


def document(form: Mapping[str, str], segments: set[str]) -> dict[str, Any]:
    """The file's document, keys in the order of docs/measurement.md. Values the model
    checks (names, weights, windows...) are left to it, so the page shows the loader's own
    words with the line."""
    variants = []
    for i in range(MAX_VARIANTS):
        name = form.get(f"v{i}_name", "")
        if name:
            weight = _number(form.get(f"v{i}_weight", ""))
            variants.append({"name": name, "weight": 1 if weight is None else weight})
    if len(variants) < 2:
        raise SetupError(TOO_FEW_VARIANTS)
    audience = form.get("audience", "")
    if audience and audience not in segments:
        raise SetupError(NO_SEGMENT, name=audience[:63])
    doc: dict[str, Any] = {"name": form.get("name", ""),
                           "description": form.get("description", ""),
                           "hypothesis": form.get("hypothesis") or None,
                           "owner": form.get("owner", ""), "audience": audience or None,
                           "variants": variants}
    start = form.get("start", "")
    if start:
        try:
            doc["start"] = date.fromisoformat(start)
        except ValueError:
            raise SetupError(BAD_DATE, text=start[:30]) from None
    window = _number(form.get("window_days", ""))
    doc["primary_metric"] = {"name": form.get("metric_name", ""),
                             "type": form.get("metric_type", ""),
                             "window_days": 14 if window is None else window}
    mde = _number(form.get("mde", ""))
    if mde is not None:
        doc["mde"] = round(mde / 100, 6)  # the form writes a percentage, the file a fraction
    planned = _number(form.get("planned_people", ""))
    if planned is not None:
        doc["planned_people"] = int(planned) if planned == int(planned) else planned
    return {k: v for k, v in doc.items() if v is not None}


def file_text(doc: Mapping[str, Any], author: str) -> str:
    """``experiments/NAME.yml`` as IT reviews it in git."""
    head = (f"# Set up from the web app by {author}. Reference: docs/measurement.md.\n")
    return head + yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=100)


def experiment_file(project: Project, name: str) -> Path:
    return confine(project.root, Path("experiments") / f"{name}.yml", what="experiment file")


def check_with_loader(name: str, text: str) -> list[Problem]:
    """Problems the project's loader (the one `passerelle validate` runs) finds in ``text``
    as ``experiments/NAME.yml``, read in a scratch folder."""
    from passerelle.project.experiments_models import load_experiments

    with tempfile.TemporaryDirectory(prefix="passerelle-experiment-") as tmp:
        scratch = Path(tmp)
        (scratch / "experiments").mkdir()
        (scratch / "experiments" / f"{name}.yml").write_text(text, "utf-8")
        problems = Problems()
        load_experiments(scratch, problems)
    return [p for p in problems.items if p.severity == "error"]


def save(project: Project, form: Mapping[str, str], author: str) -> SetupOutcome:
    """Check the form as a file with the loader, then write ``experiments/NAME.yml``;
    an existing file is replaced only when the form says ``overwrite``."""
    from passerelle.project.models import _check_name

    name = form.get("name", "")
    try:
        _check_name(name)
    except ValueError:
        return SetupOutcome(False, problems=[Problem(
            "experiments/", "The name must start with a lower-case letter and use only "
            "a-z, 0-9 and _ (63 characters at most).")])
    from passerelle.web.segment_data import saved_segments

    doc = document(form, set(saved_segments(project)))
    experiments = project.definition.experiments
    if experiments is not None and name in experiments.origin:
        file = experiments.origin[name][0]
        if Path(file).name != f"{name}.yml":
            raise SetupError(ELSEWHERE, name=name, file=file)
    text = file_text(doc, author)
    problems = check_with_loader(name, text)
    if problems:
        return SetupOutcome(False, problems=problems)
    path = experiment_file(project, name)
    if path.exists() and form.get("overwrite") != "1":
        return SetupOutcome(False, needs_confirmation=True)
    path.parent.mkdir(exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, "utf-8")
    scratch.replace(path)
    return SetupOutcome(True, path=f"experiments/{name}.yml")

