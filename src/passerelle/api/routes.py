"""REST routes: thin wrappers over the project's verbs (the same ones the CLI calls)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from passerelle.api import errors
from passerelle.api.auth import author, masked, record, requires
from passerelle.api.inputs import Document, Filter, Note, Text
from passerelle.core import Project
from passerelle.governance.principal import Principal
from passerelle.identity import service
from passerelle.jobs.worker import WarehouseLock

T = TypeVar("T")
# What each route needs (api/auth.py); routes that change something name their permission.
READ = [requires("api:read")]


class PinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is a 422, not ignored

    kind: Literal["merge", "split"]
    records: list[Text] = Field(min_length=2, max_length=2,
                                description="Two records as source:record_id")
    reason: Note = Field(min_length=3)
    # no `author`: the author is the caller (a field naming someone else is refused, 422)


class PrivacyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Text = Field(min_length=1, description="Person id, source:id, customer id, "
                                                    "e-mail, phone or loyalty card")
    reason: Note | None = Field(None, description="The request and its date (erasure)")
    confirm: bool = Field(False, description="Erasure: false previews, true erases")
    records: list[Text] | None = Field(None, max_length=100,
                                       description="Only these records of the person "
                                                   "(source:id), when identity merged two")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[Text] = Field(min_length=1, max_length=50)
    group_by: list[Text] = Field(default_factory=list, max_length=20)
    grain: Literal["day", "week", "month", "quarter", "year"] | None = None
    where: Filter | None = Field(None, description="Filter on dimensions, e.g. country = 'FR'")
    order_by: list[Text] = Field(default_factory=list, max_length=20)
    limit: int | None = Field(None, ge=1, le=100_000)

    @field_validator("where")
    @classmethod
    def _bounded(cls, v: str | None) -> str | None:
        """Too long or too deep: refused here, naming the field (a 422); what the filter
        says (names, functions) is checked by the query itself."""
        from passerelle.metrics.expr import UnsafeExpression, check_size

        if v is not None:
            try:
                check_size(v)
            except UnsafeExpression as exc:
                raise ValueError(exc.why) from None
        return v


def build_router(project: Project, lock: WarehouseLock | None = None) -> APIRouter:
    router = APIRouter(prefix="/api", responses=errors.RESPONSES)
    # One warehouse connection serves every request and the jobs' worker, one at a time:
    # DuckDB connections are not to be shared across threads. Writes also wait for the job
    # in progress to end (see passerelle.jobs.worker).
    lock = lock or WarehouseLock()

    def locked(work: Callable[[], T], write: bool = False) -> T:
        if write:
            with lock.writer, lock:
                return work()
        with lock:
            return work()

    @router.get("/runs", summary="The last pipeline runs, step by step",
                dependencies=READ)
    def runs(limit: int = Query(5, ge=1, le=100)) -> list[dict[str, Any]]:
        return locked(lambda: project.status(limit))

    @router.get("/persons", summary="Find persons by any identifier (ids only, no personal "
                                    "data)", dependencies=[requires("profiles:read")])
    def find(q: Annotated[Text, Query(min_length=1, description="Person id, source:id, "
                                                                "customer id, e-mail, phone "
                                                                "or loyalty card")],
             limit: int = Query(20, ge=1, le=100)) -> list[dict[str, Any]]:
        return locked(lambda: service.find(project.definition, project.engine, q, limit))

    @router.get("/persons/{query}", summary="The 360° view of one person (personal data "
                                            "masked unless mask=false and pii:read)")
    def person(request: Request, query: Text,
               principal: Annotated[Principal, requires("profiles:read")],
               mask: bool = Query(True, description="false: unmasked, for a caller with "
                                                    "pii:read (others get it masked)")
               ) -> dict[str, Any]:
        hide = masked(principal, asked_unmasked=not mask)
        view = locked(lambda: service.profile(project.definition, project.engine, query,
                                              mask_pii=hide))
        record(request, "profile.view", resource=f"person:{view['person_id']}",
               detail={"masked": hide})
        return view

    @router.get("/identity/report", summary="Identity quality report",
                dependencies=READ)
    def report() -> dict[str, Any]:
        return locked(lambda: service.report(project.engine))

    @router.get("/identity/pins", summary="Pins in force",
                dependencies=READ)
    def pins() -> list[dict[str, Any]]:
        return [vars(p) for p in locked(lambda: service.pins(project.definition,
                                                             project.engine))]

    @router.post("/identity/pins", status_code=201, summary="Pin two records together or "
                                                           "apart (the caller is the author)")
    def add_pin(request: Request, pin: PinRequest,
                principal: Annotated[Principal, requires("api:write", "identity:write")]
                ) -> dict[str, Any]:
        pin_id = locked(lambda: service.pin(project.definition, project.engine, pin.kind,
                                            pin.records[0], pin.records[1], pin.reason,
                                            author(principal), origin="api"), write=True)
        record(request, "pin.add", resource=f"pin:{pin_id}", detail={"kind": pin.kind})
        return {"success": True, "pin_id": pin_id}

    @router.delete("/identity/pins/{pin_id}", summary="Withdraw a pin (kept in the ledger)")
    def remove_pin(request: Request, pin_id: Text,
                   principal: Annotated[Principal, requires("api:write", "identity:write")]
                   ) -> dict[str, Any]:
        pin = locked(lambda: service.unpin(project.engine, pin_id, author(principal)),
                     write=True)
        record(request, "pin.remove", resource=f"pin:{pin.pin_id}")
        return {"success": True, "pin_id": pin.pin_id}

    @router.get("/identity/why", summary="Why two records are one person",
                dependencies=READ)
    def why(a: Text, b: Text) -> list[dict[str, Any]]:
        return locked(lambda: service.why(project.engine, a, b))

    @router.post("/identity/diff", summary="Preview a changed identity.yml",
                 dependencies=[requires("api:write", "identity:write")])
    def diff(identity_yml: Annotated[Document, Body(
            media_type="application/yaml", description="The candidate identity.yml")]) -> dict:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "identity.yml"
            path.write_text(identity_yml, encoding="utf-8")
            return locked(lambda: service.diff(project.definition, project.engine, path,
                                               project.reporter))

    @router.post("/metrics/query", summary="Answer a metric question",
                dependencies=READ)
    def metrics_query(body: MetricsQuery) -> dict[str, Any]:
        from passerelle.metrics import query

        group_by = list(body.group_by)
        if body.grain and not any(g.split("__")[0] == "metric_time" for g in group_by):
            group_by.append("metric_time")
        table = locked(lambda: query(project.engine, project.metrics(), body.metrics,
                                     group_by=group_by, where=body.where,
                                     order_by=body.order_by, limit=body.limit,
                                     grain=body.grain))
        return {"columns": table.column_names, "rows": table.to_pylist()}

    @router.get("/glossary", summary="Metrics and traits: definition, owner, lineage",
                dependencies=READ)
    def glossary() -> list[dict[str, Any]]:
        return locked(project.glossary)

    @router.get("/segments", summary="Every segment's freshness and size",
                dependencies=READ)
    def segments_status() -> list[dict[str, Any]]:
        from passerelle.segments import service as segments

        return locked(lambda: segments.status(project))

    @router.get("/audiences", summary="Every audience's freshness, size and holdout",
                dependencies=READ)
    def audiences_status() -> list[dict[str, Any]]:
        from passerelle.segments import service as segments

        return locked(lambda: segments.audience_status(project))

    @router.get("/segments/{name}/count", summary="Live size of a segment",
                dependencies=READ)
    def segment_count(name: Text) -> dict[str, Any]:
        from passerelle.segments import service as segments

        return {"segment": name, "people": locked(lambda: segments.count(project, name))}

    @router.get("/segments/{name}/sample", summary="A few members, masked for the role")
    def segment_sample(name: Text,
                       principal: Annotated[Principal, requires("api:read")],
                       n: int = Query(20, ge=1, le=200),
                       role: Literal["marketer", "it", "admin"] = Query(
                           "marketer", description="marketer: e-mail, phone and last name "
                                                   "masked; it, admin: shown to a caller "
                                                   "with pii:read (masked for others)")
                       ) -> list[dict[str, Any]]:
        from passerelle.segments import service as segments

        shown = role if not masked(principal, asked_unmasked=role != "marketer") else "marketer"
        return locked(lambda: segments.sample(project, name, n=n, role=shown))

    @router.get("/segments/overlap/", summary="Overlap of two to eight segments",
                dependencies=READ)
    def segment_overlap(names: Annotated[list[Text], Query(min_length=2, max_length=8)]) -> dict:
        from passerelle.segments import service as segments

        return locked(lambda: segments.overlap(project, names))

    @router.get("/exports", summary="The export log",
                dependencies=READ)
    def exports(audience: Text | None = None,
                limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        from passerelle.activation import list_exports

        return locked(lambda: list_exports(project.engine, audience, limit))

    @router.get("/deliveries/dead-letters", summary="Failed webhook batches waiting for retry",
                dependencies=READ)
    def dead_letters(audience: Text | None = None) -> list[dict[str, Any]]:
        from passerelle.activation import list_dead_letters

        return locked(lambda: list_dead_letters(project.engine, "open", audience))

    @router.get("/experiments/{name}", summary="Analysis of an A/B/n test",
                dependencies=READ)
    def experiment(name: Text) -> dict[str, Any]:
        from passerelle.measure.report import analyse_experiment

        return locked(lambda: analyse_experiment(project, project.engine, name))

    @router.get("/experiments", summary="Experiments defined and seen in exposure events",
                dependencies=READ)
    def experiments() -> list[dict[str, Any]]:
        from passerelle.measure.coverage import experiments_coverage

        return locked(lambda: experiments_coverage(project, project.engine))

    @router.get("/campaigns", summary="Campaign results with intervals (spend, CPA, ROAS, ROI)",
                dependencies=READ)
    def campaigns(window: int = Query(14, ge=1, le=365, description="Days after a touch"),
                  grain: Literal["day", "week", "month"] | None = None) -> list[dict[str, Any]]:
        from datetime import timedelta

        from passerelle.measure.report import campaign_results

        return locked(lambda: campaign_results(project, project.engine,
                                               timedelta(days=window), grain).to_pylist())

    @router.get("/attribution", summary="Every attribution model side by side, per channel",
                dependencies=READ)
    def attribution(lookback: int = Query(30, ge=1, le=365, description="Days of touches"),
                    value: Literal["conversions", "revenue"] = "conversions") -> dict[str, Any]:
        from datetime import timedelta

        from passerelle.measure.report import attribution_report

        report = locked(lambda: attribution_report(project, project.engine,
                                                   timedelta(days=lookback)))
        return {"summary": report["summary"], "rows": report[value].to_pylist()}

    @router.get("/incrementality", summary="What each audience's sends caused (holdouts), "
                                           "with the incremental ROI",
                dependencies=READ)
    def incrementality(
        window: int = Query(14, ge=1, le=365, description="Days after each send"),
        audience: Annotated[list[Text] | None, Query(description="Only these audiences")]
        = None,
        campaign: Annotated[list[Text] | None, Query(
            description="AUDIENCE=CAMPAIGN_ID of ad_spend (default: the audience's name)")]
        = None,
        spend: Annotated[list[Text] | None, Query(
            description="AUDIENCE=AMOUNT in the project currency, instead of ad_spend")] = None,
        rate: Annotated[list[Text] | None, Query(description="CURRENCY=RATE, e.g. USD=0.92")]
        = None,
    ) -> dict[str, Any]:
        from datetime import timedelta

        from passerelle.measure.holdouts import incrementality_report, parse_pairs

        args = (parse_pairs(campaign, "AUDIENCE=CAMPAIGN_ID"),
                parse_pairs(spend, "AUDIENCE=AMOUNT"), parse_pairs(rate, "CURRENCY=RATE"))
        return locked(lambda: incrementality_report(project, project.engine,
                                                    timedelta(days=window), audience or None,
                                                    *args))

    @router.get("/events/violations", summary="Tracking-plan violations by event and rule",
                dependencies=READ)
    def violations(source: Text | None = None) -> list[dict[str, Any]]:
        from passerelle.collect import list_violations

        return locked(lambda: list_violations(project.engine, source))

    @router.post("/privacy/access", summary="Everything held about a person (GDPR art. 15); "
                                            "the caller is the one who handles it")
    def privacy_access(request: Request, body: PrivacyRequest,
                       principal: Annotated[Principal, requires("api:write", "privacy:handle",
                                                                 "pii:read")]
                       ) -> dict[str, Any]:
        from passerelle.privacy import access_report, person_of

        def work() -> tuple[str, dict[str, Any]]:
            person = person_of(project.definition, project.engine, body.subject, body.records)
            return person, access_report(project.definition, project.engine, person,
                                         requested_by=author(principal), records=body.records)
        person, report = locked(work, write=True)
        record(request, "privacy.access", resource=f"person:{person}")
        return report

    @router.post("/privacy/erasure", summary="Preview, then erase a person (GDPR art. 17); "
                                             "the caller is the one who handles it")
    def privacy_erasure(request: Request, body: PrivacyRequest,
                        principal: Annotated[Principal, requires("api:write", "privacy:handle")]
                        ) -> dict[str, Any]:
        from passerelle.privacy import erase_person, person_of, preview_erasure

        def work() -> tuple[str, dict[str, Any]]:
            person = person_of(project.definition, project.engine, body.subject, body.records)
            if not body.confirm:
                return person, {"erased": False, **preview_erasure(
                    project.definition, project.engine, person, records=body.records)}
            return person, {"erased": True, **erase_person(
                project.definition, project.engine, person, requested_by=author(principal),
                reason=body.reason, records=body.records)}
        person, answer = locked(work, write=body.confirm)
        record(request, "privacy.erasure" if body.confirm else "privacy.erasure_preview",
               resource=f"person:{person}")
        return answer

    @router.get("/privacy/requests", summary="The register of access and erasure requests",
                dependencies=[requires("api:read", "privacy:handle")])
    def privacy_requests(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        from passerelle.privacy import list_requests

        return locked(lambda: list_requests(project.engine, limit))

    return router
