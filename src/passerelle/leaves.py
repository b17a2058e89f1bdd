"""Reading the leaf definitions (traits, metrics, segments, experiments, destinations, offers
and placements), file by file: a broken one is left out with whatever uses it (see
:mod:`passerelle.project.leaves`).

Above the capabilities: each kind's reader and cross-checks live with its capability; this
module only asks each of them and follows what depends on what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from passerelle.errors import Problem, Problems
from passerelle.project.leaves import Leaves, Skipped
from passerelle.project.leaves import skip as _skip
from passerelle.project.yamlio import YamlSyntaxError, read_yaml
from passerelle.verdicts import Verdicts


def _broken(problems: Problems) -> set[str]:
    return {p.file for p in problems.errors}


BROKEN = "its file has problems"


def load_leaves(root: Path) -> Leaves:
    """Read every leaf definition; the broken ones and their dependants are skipped."""
    out = Leaves()
    verdicts = Verdicts(root)  # the expressions' checks, kept between loads
    traits, gone = _traits(root, out, verdicts)
    _segments(root, out, traits, gone)
    _metrics(root, out, verdicts)
    verdicts.save()
    _experiments(root, out)
    _destinations(root, out)
    _offers(root, out)
    return out


def _unparsed_names(root: Path, files: set[str], key: str | None, known: set[str],
                    ) -> list[tuple[str, str, int | None]]:
    """(name, file, line) of the definitions of broken ``files`` that did not parse at all,
    read from the YAML itself (``key``: the list holding them; None: one a file)."""
    found = []
    for file in sorted(files):
        try:
            doc = read_yaml(root / file, file)
        except (YamlSyntaxError, OSError):
            doc = None
        data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
        if key is None:
            name = str(data.get("name") or Path(file).stem)
            if name not in known:
                found.append((name, file, doc.line_of(("name",)) if doc else None))
            continue
        items = data.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name not in known:
                found.append((name, file, doc.line_of((key, i, "name")) if doc else None))
    return found


def _traits(root: Path, out: Leaves, verdicts: Verdicts
            ) -> tuple[Any, dict[tuple[str, str], Skipped]]:
    """Every trait that parsed (segments are checked against all of them: a segment on a
    broken trait is skipped for that reason, not reported as naming an unknown one), and
    the names a segment may use that are skipped (a builtin's parts included)."""
    from passerelle.project.traits_models import TraitDefinitions, outputs
    from passerelle.traits.files import load_traits

    problems = Problems()
    traits = load_traits(root, problems, verdicts)
    out.problems += problems.items
    bad = _broken(problems)
    kept: list[Any] = []
    gone: dict[tuple[str, str], Skipped] = {}
    for trait in traits.traits:
        origin = traits.origin[trait.name]
        if origin[0] in bad:
            skipped = _skip(out, "trait", trait.name, origin, BROKEN, broken=True)
            gone.update({("trait", p): skipped for p in (trait.name, *outputs(trait))})
        else:
            kept.append(trait)
    for name, file, line in _unparsed_names(root, bad, "traits", set(traits.origin)):
        gone["trait", name] = _skip(out, "trait", name, (file, line), BROKEN, broken=True)
    out.traits = TraitDefinitions(kept, {t.name: traits.origin[t.name] for t in kept})
    return traits, gone


def _segments(root: Path, out: Leaves, traits: Any,
              gone: dict[tuple[str, str], Skipped]) -> None:
    from passerelle.project.segments_models import InSegmentCondition, TraitCondition
    from passerelle.segments import read_segments, trait_kinds
    from passerelle.segments.validate import walk

    problems = Problems()
    defs = read_segments(root, problems, trait_kinds(traits) if traits.traits else {})
    out.problems += problems.items
    bad = _broken(problems)
    for name, seg_origin in list(defs.origin.items()):
        if seg_origin[0] in bad:
            gone["segment", name] = _skip(out, "segment", name, seg_origin, BROKEN, True)
    for name, file, line in _unparsed_names(root, bad, None, set(defs.segments)):
        gone["segment", name] = _skip(out, "segment", name, (file, line), BROKEN, True)
    changed = True
    while changed:  # a segment on a skipped one is skipped too, however deep
        changed = False
        for name, seg in defs.segments.items():
            if ("segment", name) in gone:
                continue
            for cond, _ in walk(seg.where):
                used = (("segment", cond.in_segment) if isinstance(cond, InSegmentCondition)
                        else ("trait", cond.trait) if isinstance(cond, TraitCondition) else None)
                if used in gone:
                    why = gone[used]
                    gone["segment", name] = _skip(
                        out, "segment", name, defs.origin[name],
                        f"it uses {used[0]} '{used[1]}', which is skipped ({why.where})")
                    changed = True
                    break
    for name, audience in list(defs.audiences.items()):
        if ("segment", audience.segment) in gone:
            del defs.audiences[name]
            _skip(out, "audience", name, defs.origin[audience.segment],
                  f"its segment '{audience.segment}' is skipped")
    for kind, name in gone:
        if kind == "segment" and name in defs.segments:
            del defs.segments[name]
    out.segments = defs


def _metrics(root: Path, out: Leaves, verdicts: Verdicts) -> None:
    from passerelle.metrics.load import read_metrics

    problems = Problems()
    pm = read_metrics(root, problems, verdicts)
    out.problems += problems.items
    bad = _broken(problems)

    def origin(kind: str, name: str) -> tuple[str, int | None]:
        at = pm.located[(kind, name)]
        return at.doc.file, at.line("name")

    for name in [n for n in pm.semantic_models if origin("semantic_model", n)[0] in bad]:
        _skip(out, "semantic model", name, origin("semantic_model", name), BROKEN, True)
        del pm.semantic_models[name]
    gone: dict[str, Skipped] = {}
    for name in [n for n in pm.metrics if origin("metric", n)[0] in bad]:
        gone[name] = _skip(out, "metric", name, origin("metric", name), BROKEN, True)
    changed = True
    while changed:
        changed = False
        for name, metric in pm.metrics.items():
            if name in gone:
                continue
            dep = next((d for d in pm.dependencies(metric) if d in gone), None)
            missing = next((m for m in pm.measures_of(metric) if pm.measure(m) is None), None)
            if dep is not None:
                reason = f"it uses metric '{dep}', which is skipped ({gone[dep].where})"
            elif missing is not None:
                reason = f"its measure '{missing}' is in a file that has problems"
            else:
                continue
            gone[name] = _skip(out, "metric", name, origin("metric", name), reason)
            changed = True
    for name in gone:
        del pm.metrics[name]
    out.metrics = pm


def _experiments(root: Path, out: Leaves) -> None:
    from passerelle.project.experiments_models import load_experiments

    problems = Problems()
    found = load_experiments(root, problems)
    out.problems += problems.items
    bad = _broken(problems)
    for name, origin in list(found.origin.items()):
        if origin[0] in bad:
            _skip(out, "experiment", name, origin, BROKEN, True)
            del found.experiments[name]
            del found.origin[name]
    segments = set(out.segments.segments) if out.segments is not None else set()
    for name, cfg in found.experiments.items():
        if cfg.audience and cfg.audience not in segments:
            file, line = found.origin[name]
            out.problems.append(Problem(file, f"experiment '{name}': its audience "
                                        f"'{cfg.audience}' is not a segment of the project",
                                        line, "name one of segments/*.yml, or remove the key",
                                        "warning"))
    out.experiments = found


def _destinations(root: Path, out: Leaves) -> None:
    """Destinations are read when an export uses them: here they are only checked."""
    from passerelle.errors import ProjectError
    from passerelle.project.destinations_models import load_destinations

    try:
        load_destinations(root)
    except ProjectError as exc:
        out.problems += exc.problems


def _offers(root: Path, out: Leaves) -> None:
    """Placements and offers: a broken file leaves its definition out (an offer naming a
    broken placement is itself reported, so it is left out too)."""
    if not any((root / d).is_dir() for d in ("offers", "placements")):
        return
    from passerelle.personalize.validate import load_offers

    defs, problems = load_offers(root)
    out.problems += problems.items
    bad = _broken(problems)
    for folder, kind, kept in (("placements/", "placement", defs.placements),
                               ("offers/", "offer", defs.offers)):
        mine = {f for f in bad if f.startswith(folder)}
        for name, file, line in _unparsed_names(root, mine, None, set(kept)):
            _skip(out, kind, name, (file, line), BROKEN, broken=True)
    out.offers = defs
