"""Campaigns and experiments (issue 17, page 4): campaign results with their intervals, the
audiences measured against their holdout, the attribution models side by side (chart and
table); experiment set-up with the sample-size calculator; an experiment's read-out with a
plain-language verdict that states its uncertainty, and the SRM check.

Figures come from ``passerelle.measure`` (report, holdouts, design); charts are inline SVG
drawn on the server (:mod:`passerelle.web.svg`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from passerelle.api.inputs import Text
from passerelle.errors import PasserelleError
from passerelle.figures.compute import campaigns_key, experiment_key
from passerelle.formatting import Formatter
from passerelle.governance.errors import CsrfFailed
from passerelle.web import experiment_setup as setup_form
from passerelle.web import svg
from passerelle.web.auth import checked_form, require
from passerelle.web.i18n import translator
from passerelle.web.pages import PageUser, User, error_page, locked, render
from passerelle.web.segment_data import reload_definitions, saved_segments
from passerelle.web.segment_pages import _audit, _csrf_refused, formatter
from passerelle.web.stored import figure

# Messages too long for one line of code (their French is in i18n.py all the same).
LIFT_TITLE = "Lift of each variant over control, with its interval"
SRM_WARNING = ("Do not trust this result: the people were not split between the variants as "
               "planned (sample ratio mismatch).")
# Words the pages show from the measure package's data (translated like the templates).
STATUSES = ("ok", "defined, never seen", "seen, not defined")
MESSAGES = (LIFT_TITLE, SRM_WARNING, *STATUSES, *setup_form.MESSAGES, *setup_form.METRIC_TYPES)
router = APIRouter(include_in_schema=False)
MODEL_NAMES = {"first": "first touch", "last": "last touch",
               "last_non_direct": "last non-direct touch", "linear": "linear",
               "time_decay": "time decay", "position_based": "position based",
               "markov": "Markov", "shapley": "Shapley"}


def install(app: FastAPI) -> None:
    app.include_router(router)


def _attempt(work: Callable[[], Any]) -> tuple[Any, PasserelleError | None]:
    try:
        return locked(work), None
    except PasserelleError as exc:
        return None, exc


SECTIONS = ("holdouts", "results", "attribution")


@router.get("/campaigns")
def campaigns(request: Request, user: User,
              window: Annotated[int, Query(ge=1, le=365)] = 14) -> Response:
    """The page's frame: each section (holdouts, results, attribution models) loads after
    it (HTMX, ``/campaigns/sections/{section}``), showing "computing…" meanwhile."""
    return render(request, "campaigns.html", user.lang, user=user, window=window)


@router.get("/campaigns/sections/{section}")
def campaign_section(request: Request, user: User,
                     section: Annotated[str, Path(pattern="^(holdouts|results|attribution)$")],
                     window: Annotated[int, Query(ge=1, le=365)] = 14) -> Response:
    """One section of the campaigns page; its figures are kept per server while the
    warehouse has no new run (:mod:`passerelle.web.cache`)."""
    project = request.app.state.web_project
    fm = formatter(user.lang, project)
    _ = translator(user.lang)
    stored = figure(request, user, campaigns_key(section, window))
    found, error = _attempt(lambda: stored.value)
    context: dict[str, Any] = {"results": None, "results_error": None, "holdouts": None,
                               "holdouts_error": None, "attribution": None,
                               "attribution_error": None}
    context[section], context[f"{section}_error"] = found, error
    charts: dict[str, Any] = {}
    results, holdouts, attribution = (context["results"], context["holdouts"],
                                      context["attribution"])
    if results:
        charts["revenue"] = svg.intervals(
            [(f"{r['campaign_id']} · {r['channel']}", r["revenue"], r["revenue_low"],
              r["revenue_high"]) for r in results],
            _("Revenue within %(days)s days of the campaign, with its 95 %% interval",
              days=window), lambda v: fm.money(v))
    if holdouts and holdouts["audiences"]:
        charts["incremental"] = svg.intervals(
            [(a["audience"], *_iv(a.get("incremental_revenue"))) for a in holdouts["audiences"]],
            _("Incremental revenue against the holdout, with its interval"),
            lambda v: fm.money(v))
    if attribution and attribution["channels"]:
        charts["attribution"] = svg.grouped_bars(
            attribution["channels"],
            [(_(MODEL_NAMES.get(m, m)), attribution["conversions"][m])
             for m in attribution["models"]],
            _("Conversions credited to each channel by each attribution model"),
            lambda v: fm.number(v, 1))
    return render(request, "_campaign_section.html", user.lang, user=user, fm=fm,
                  window=window, section=section, charts=charts, model_names=MODEL_NAMES,
                  figure=stored, **context)


def _iv(iv: dict[str, float] | None) -> tuple[float | None, float | None, float | None]:
    if not iv:
        return None, None, None
    return iv.get("estimate"), iv.get("low"), iv.get("high")


# ---------------------------------------------------------------------------- experiments
@router.get("/experiments")
def experiments(request: Request, user: User,
                metric: Annotated[str, Query(pattern="^(conversion|mean)$")] = "conversion",
                baseline: Annotated[str, Query(max_length=30)] = "",
                std: Annotated[str, Query(max_length=30)] = "",
                mde: Annotated[str, Query(max_length=30)] = "",
                alpha: Annotated[str, Query(max_length=30)] = "0.05",
                power: Annotated[str, Query(max_length=30)] = "0.8",
                variant_share: Annotated[str, Query(max_length=30)] = "50",
                ) -> Response:
    """The project's experiments, the sample-size calculator (``baseline`` and ``mde``
    in percent for a conversion; ``std`` and an absolute ``mde`` for a mean) and the set-up
    form it fills. The fields are read as the form sends them: an empty one is absent, a
    comma is a decimal mark."""
    form = {"metric": metric, "baseline": baseline, "std": std, "mde": mde, "alpha": alpha,
            "power": power, "variant_share": variant_share}
    return _experiments_page(request, user, form)


def _experiments_page(request: Request, user: PageUser, form: dict[str, str],
                      setup: dict[str, str] | None = None, status: int = 200,
                      **extra: Any) -> Response:
    from passerelle.measure.coverage import experiments_coverage

    project = request.app.state.web_project
    fm = formatter(user.lang, project)
    coverage, coverage_error = _attempt(lambda: experiments_coverage(project, project.engine))
    size, size_error = None, None
    metric = form["metric"]
    asked = bool(form["mde"].strip()) and bool(
        (form["baseline"] if metric == "conversion" else form["std"]).strip())
    if asked:
        try:
            values = {k: _number(v, translator(user.lang)) for k, v in form.items()
                      if k != "metric"}
        except PasserelleError as exc:
            size_error = exc
        else:
            size, size_error = sample_size(metric, values["baseline"], values["std"],
                                           values["mde"], values["alpha"] or 0.05,
                                           values["power"] or 0.8,
                                           values["variant_share"] or 50)
    defined = sorted(project.definition.experiments.experiments) \
        if project.definition.experiments else []
    if setup is None:
        setup = setup_form.prefilled(form, size, user.principal.display_name)
    return render(request, "experiments.html", user.lang, status, user=user, fm=fm,
                  coverage=coverage, coverage_error=coverage_error, defined=defined,
                  size=size, size_error=size_error, asked=asked, form=form, setup=setup,
                  segments=sorted(saved_segments(project)),
                  metric_types=setup_form.METRIC_TYPES,
                  variant_rows=range(setup_form.MAX_VARIANTS), **extra)


@router.post("/experiments/setup")
async def setup_experiment(request: Request, user: User) -> Response:
    """Write ``experiments/NAME.yml`` from the set-up form (checked by the project's loader;
    an existing file is replaced only when asked), then show its read-out."""
    require(user, "experiments:write")
    try:
        fields = await checked_form(request, user)
    except CsrfFailed:
        return _csrf_refused(request, user)
    project = request.app.state.web_project
    _ = translator(user.lang)
    setup = setup_form.initial(fields)
    calculator = {"metric": "conversion", "baseline": "", "std": "", "mde": "",
                  "alpha": "0.05", "power": "0.8", "variant_share": "50"}
    try:
        outcome = locked(lambda: setup_form.save(project, setup, user.principal.display_name))
    except setup_form.SetupError as exc:
        return _experiments_page(request, user, calculator, setup, 400,
                                 setup_error=_(exc.message, **exc.values))
    except PasserelleError as exc:
        return _experiments_page(request, user, calculator, setup, 400,
                                 setup_error=exc.reason)
    if outcome.needs_confirmation:
        return _experiments_page(request, user, calculator, setup, 409,
                                 setup_error=_(setup_form.EXISTS, name=setup["name"]),
                                 confirm=True)
    if not outcome.saved:
        return _experiments_page(request, user, calculator, setup, 400,
                                 setup_problems=outcome.problems)
    _audit(request, user, "experiment.save", outcome.path)
    reload_definitions(project, request.app.state.server_project)
    return RedirectResponse(f"/experiments/{setup['name']}?saved=1", status_code=303)


def _number(text: str, _: Callable[..., str]) -> float | None:
    """A field of the calculator: empty is absent, a comma is a decimal mark."""
    text = text.strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise PasserelleError(_("“%(text)s” is not a number.", text=text))
    return value


def sample_size(metric: str, baseline: float | None, std: float | None, mde: float | None,
                alpha: float, power: float, variant_share: float
                ) -> tuple[dict[str, Any] | None, PasserelleError | None]:
    """People per arm from the calculator's fields (percentages as the form writes them)."""
    from passerelle.measure.design import sample_size_means, sample_size_proportions

    try:
        if not 0 < variant_share < 100:
            raise PasserelleError("The variant's share must lie between 0 and 100 %.",
                                  "Typical value: 50.")
        ratio = variant_share / (100 - variant_share)
        if metric == "conversion":
            s = sample_size_proportions((baseline or 0) / 100, (mde or 0) / 100, True, alpha,
                                        power, ratio)
        else:
            s = sample_size_means(std or 0, mde or 0, alpha, power, ratio)
    except PasserelleError as exc:
        return None, exc
    return {"control": s.control, "variant": s.variant, "total": s.control + s.variant}, None


@router.get("/experiments/{name}")
def experiment(request: Request, user: User, name: Text) -> Response:
    project = request.app.state.web_project
    fm = formatter(user.lang, project)
    _ = translator(user.lang)
    experiments = project.definition.experiments
    config = experiments.experiments.get(name) if experiments else None
    if config is None:
        from passerelle.measure.report import analyse_experiment

        # the measure package's own words for an unknown experiment
        _result, error = _attempt(lambda: analyse_experiment(project, project.engine, name))
        reason = error.reason if error else name
        return error_page(request, user, user.lang, 404, _("Page not found"), reason,
                          error.instruction if error else None)
    stored = figure(request, user, experiment_key(project, name))
    result, error = _attempt(lambda: stored.value)
    verdicts, chart = [], None
    if result:
        primary = [c for c in result["comparisons"] if c.get("primary") and "lift" in c]
        verdicts = [{"variant": c["variant"], "text": verdict(c, result, fm, _)}
                    for c in primary]
        rows = [(f"{c['variant']} · {c['metric']}", *_iv(c.get("lift")))
                for c in result["comparisons"] if "lift" in c]
        chart = svg.intervals(rows, _(LIFT_TITLE), lambda v: fm.percent(v, 1, sign=True))
    return render(request, "experiment.html", user.lang, user=user, fm=fm, exp_name=name,
                  result=result, error=error, verdicts=verdicts, chart=chart, config=config,
                  figure=stored,
                  saved=request.query_params.get("saved") == "1")


def verdict(c: dict[str, Any], result: dict[str, Any], fm: Formatter,
            _: Callable[..., str]) -> str:
    """"+9.7 % web_conversion_14d, between +1.7 % and +17.8 %; likely a real gain": the
    lift, its interval and what it means, in the reader's language."""
    lift = c["lift"]
    head = _("%(lift)s %(metric)s, between %(low)s and %(high)s",
             lift=fm.percent(lift["estimate"], 1, sign=True), metric=c["metric"],
             low=fm.percent(lift["low"], 1, sign=True),
             high=fm.percent(lift["high"], 1, sign=True))
    if c.get("significant") and lift["estimate"] > 0:
        meaning = _("likely a real gain")
    elif c.get("significant"):
        meaning = _("likely a real loss")
    else:
        meaning = _("it could be no difference at all: the interval includes zero")
    text = _("%(head)s; %(meaning)s (%(level)s interval).", head=head, meaning=meaning,
             level=fm.percent(result["level"], 0))
    if result["srm"]["mismatch"]:
        text = _(SRM_WARNING) + " " + text
    return text
