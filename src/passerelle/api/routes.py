"""REST routes: thin wrappers over the project's verbs (the same ones the CLI calls)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from passerelle.core import Project
from passerelle.identity import service

T = TypeVar("T")


class PinRequest(BaseModel):
    kind: Literal["merge", "split"]
    records: list[str] = Field(min_length=2, max_length=2,
                               description="Two records as source:record_id")
    reason: str = Field(min_length=3)
    author: str | None = None


class MetricsQuery(BaseModel):
    metrics: list[str] = Field(min_length=1)
    group_by: list[str] = Field(default_factory=list)
    grain: Literal["day", "week", "month", "quarter", "year"] | None = None
    where: str | None = Field(None, description="Filter on dimensions, e.g. country = 'FR'")
    order_by: list[str] = Field(default_factory=list)
    limit: int | None = Field(None, ge=1, le=100_000)


def build_router(project: Project) -> APIRouter:
    router = APIRouter(prefix="/api")
    # One warehouse connection serves every request, one at a time: DuckDB connections
    # are not to be shared across threads, and requests are short.
    lock = threading.Lock()

    def locked(work: Callable[[], T]) -> T:
        with lock:
            return work()

    @router.get("/runs", summary="The last pipeline runs, step by step")
    def runs(limit: int = Query(5, ge=1, le=100)) -> list[dict[str, Any]]:
        return locked(lambda: project.status(limit))

    @router.get("/persons", summary="Find persons by any identifier")
    def find(q: str = Query(min_length=1, description="Person id, source:id, customer id, "
                                                      "e-mail, phone or loyalty card"),
             limit: int = Query(20, ge=1, le=100)) -> list[dict[str, Any]]:
        return locked(lambda: service.find(project.definition, project.engine, q, limit))

    @router.get("/persons/{query}", summary="The 360° view of one person")
    def person(query: str, mask: bool = True) -> dict[str, Any]:
        return locked(lambda: service.profile(project.definition, project.engine, query,
                                              mask_pii=mask))

    @router.get("/identity/report", summary="Identity quality report")
    def report() -> dict[str, Any]:
        return locked(lambda: service.report(project.engine))

    @router.get("/identity/pins", summary="Pins in force")
    def pins() -> list[dict[str, Any]]:
        return [vars(p) for p in locked(lambda: service.pins(project.definition,
                                                             project.engine))]

    @router.post("/identity/pins", status_code=201, summary="Pin two records together or apart")
    def add_pin(pin: PinRequest) -> dict[str, Any]:
        pin_id = locked(lambda: service.pin(project.definition, project.engine, pin.kind,
                                            pin.records[0], pin.records[1], pin.reason,
                                            pin.author or "api", origin="api"))
        return {"success": True, "pin_id": pin_id}

    @router.delete("/identity/pins/{pin_id}", summary="Withdraw a pin (kept in the ledger)")
    def remove_pin(pin_id: str, author: str = "api") -> dict[str, Any]:
        pin = locked(lambda: service.unpin(project.engine, pin_id, author))
        return {"success": True, "pin_id": pin.pin_id}

    @router.get("/identity/why", summary="Why two records are one person")
    def why(a: str, b: str) -> list[dict[str, Any]]:
        return locked(lambda: service.why(project.engine, a, b))

    @router.post("/identity/diff", summary="Preview a changed identity.yml")
    def diff(identity_yml: str = Body(media_type="application/yaml",
                                      description="The candidate identity.yml")) -> dict:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "identity.yml"
            path.write_text(identity_yml, encoding="utf-8")
            return locked(lambda: service.diff(project.definition, project.engine, path,
                                               project.reporter))

    @router.post("/metrics/query", summary="Answer a metric question")
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

    @router.get("/glossary", summary="Metrics and traits: definition, owner, lineage")
    def glossary() -> list[dict[str, Any]]:
        return locked(project.glossary)

    @router.get("/segments", summary="Every segment's freshness and size")
    def segments_status() -> list[dict[str, Any]]:
        from passerelle.segments import service as segments

        return locked(lambda: segments.status(project))

    @router.get("/segments/{name}/count", summary="Live size of a segment")
    def segment_count(name: str) -> dict[str, Any]:
        from passerelle.segments import service as segments

        return {"segment": name, "people": locked(lambda: segments.count(project, name))}

    @router.get("/segments/{name}/sample", summary="A few members (masked by default)")
    def segment_sample(name: str, n: int = Query(20, ge=1, le=200),
                       mask: bool = True) -> list[dict[str, Any]]:
        from passerelle.segments import service as segments

        return locked(lambda: segments.sample(project, name, n=n, mask_pii=mask))

    @router.get("/segments/overlap/", summary="Overlap of two to eight segments")
    def segment_overlap(names: Annotated[list[str], Query(min_length=2, max_length=8)]) -> dict:
        from passerelle.segments import service as segments

        return locked(lambda: segments.overlap(project, names))

    @router.get("/exports", summary="The export log")
    def exports(audience: str | None = None,
                limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
        from passerelle.activation import list_exports

        return locked(lambda: list_exports(project.engine, audience, limit))

    @router.get("/deliveries/dead-letters", summary="Failed webhook batches waiting for retry")
    def dead_letters(audience: str | None = None) -> list[dict[str, Any]]:
        from passerelle.activation import list_dead_letters

        return locked(lambda: list_dead_letters(project.engine, "open", audience))

    @router.get("/experiments/{name}", summary="Analysis of an A/B/n test")
    def experiment(name: str) -> dict[str, Any]:
        from passerelle.measure.report import analyse_experiment

        return locked(lambda: analyse_experiment(project, project.engine, name))

    @router.get("/events/violations", summary="Tracking-plan violations by event and rule")
    def violations(source: str | None = None) -> list[dict[str, Any]]:
        from passerelle.collect import list_violations

        return locked(lambda: list_violations(project.engine, source))

    return router
