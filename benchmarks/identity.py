"""Identity benchmark: accuracy on the demo's ground truth, and speed against Splink alone.

Accuracy (``--people``, default 100,000 true people): the demo retailer is generated, its
customer sources are loaded and staged, and ``resolve_identity`` runs with the demo's own
``identity.yml``. Pairwise precision, recall and F1 are scored against ``truth/records.csv``,
overall and per source pair, each with its *blocking recall ceiling*: the recall that a
perfect model would reach given the candidate pairs (pairs equal on every field of a blocking
rule, on the prepared columns Splink reads, or sharing a deterministic key value), closed
transitively as clustering does. Recall cannot exceed it.

Speed (``--records``, default ~1,000,000 customer records): the demo generated at the size
that gives that many customer records, its customer sources staged once, then three phases,
each in its own process with its peak memory (``_common.run_phase``), on copies of the same
warehouse and the same DuckDB settings:

- ``passerelle``: ``resolve_identity`` end to end (keys, Splink training and scoring on the
  signature representatives, graph, stable ids, ledger, golden records);
- ``passerelle, saved model``: the same, again, reusing the model the first phase saved;
- ``splink alone``: Splink on every record with the same comparisons, blocking rules and
  training steps (prior, u by random sampling, m by EM on each ``em_blocking`` rule), then
  ``predict`` at the same threshold and ``cluster_pairwise_predictions_at_threshold``;
  training takes Splink's defaults, and a second phase the options Passerelle passes (u in
  one chunk, EM's iterations on agreement-pattern counts);
- ``incremental``: on another copy, with the demo's rules without term frequencies (with
  them every run is a full run), a full run (training) without 1 % of the records; then
  those records arrive and the next run takes the incremental path. Its partition is
  checked against a full run on a copy holding the same records and model.

Targets (issue 4): precision >= 0.98 and recall >= 0.95 at 100k people; end to end no slower
than Splink alone; peak memory under 6 GB.

    python benchmarks/identity.py                                # 100k people, ~1M records
    python benchmarks/identity.py --people 3000 --records 50000  # a quick run
    python benchmarks/identity.py --people 0                     # speed only
    python benchmarks/identity.py --records 0                    # accuracy only
    python benchmarks/identity.py --people 0 --no-incremental --score-speed-run
        # speed at ~1M records without the incremental phases, and the accuracy of that run

Staged warehouses are kept in ``benchmarks/.data/`` (keyed by size) so a second run skips
generation and staging; ``--fresh`` rebuilds them. Reports go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

HERE = Path(__file__).parent
DATA = HERE / ".data" / "identity"
CUSTOMER_SOURCES = ("crm_contacts", "eshop_customers", "loyalty_members", "newsletter_signups")
RECORDS_PER_PERSON = 1.93  # customer records per true person in the demo (measured)


# -------------------------------------------------------------------- run in the phases
def staged_demo(people: int, root: Path, fresh: bool = False) -> Path:
    """The demo at ``people``, its customer sources loaded and staged (no identity yet).

    Other sources and checks are removed from the project: the benchmark is about identity.
    """
    import passerelle
    from passerelle.demo.generate import generate_demo
    from passerelle.demo.project import IDENTITY_YML

    project, truth = root / "demo", root / "truth"
    done = root / "staged.ok"
    if done.exists() and not fresh:
        # the cached data stays; the rules are always today's demo identity.yml
        (project / "identity.yml").write_text(IDENTITY_YML, encoding="utf-8")
        return project
    shutil.rmtree(root, ignore_errors=True)
    generate_demo(project, truth, size=people, seed=42)
    shutil.rmtree(project / "data" / "events", ignore_errors=True)
    for yml in (project / "sources").glob("*.yml"):
        if yml.stem not in CUSTOMER_SOURCES:
            yml.unlink()
    shutil.rmtree(project / "checks", ignore_errors=True)
    identity = project / "identity.yml"
    aside = root / "identity.yml"
    identity.replace(aside)
    with passerelle.open(project) as p:
        p.run()
    aside.replace(identity)
    done.write_text("ok\n")
    return project


def _engine(project: Path, memory_limit: str | None, threads: int | None):
    from passerelle.engines.duckdb import DuckDBEngine

    return DuckDBEngine(project / "warehouse.duckdb", threads=threads,
                        memory_limit=memory_limit)


def copy_project(source: Path, target: Path, keep_model: bool = False) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target,
                    ignore=None if keep_model else shutil.ignore_patterns("identity"))
    return target


def without_term_frequencies(project: Path) -> None:
    """The demo's rules without term frequencies: new records change every frequency, so
    with them every run is a full run, and the incremental path would not be measured."""
    identity = project / "identity.yml"
    identity.write_text(identity.read_text(encoding="utf-8").replace(
        ", term_frequencies: true", ""), encoding="utf-8")


def passerelle_identity(project: Path, retrain: bool, memory_limit: str | None,
                        threads: int | None, full: bool = True) -> dict:
    """``resolve_identity`` as ``passerelle run`` calls it; returns its counts and the
    seconds of its steps. ``full=False`` lets it take the incremental path."""
    import time

    from passerelle.definition import load_project
    from passerelle.identity.resolve import resolve_identity
    from passerelle.reporter import SilentReporter

    definition = load_project(project)
    reporter = SilentReporter()
    with _engine(project, memory_limit, threads) as engine:
        result = resolve_identity(definition, engine, reporter,
                                  f"bench-{time.time_ns()}", retrain=retrain, full=full)
    return {"records": result.records, "persons": result.persons,
            "key_edges": result.key_edges, "splink_edges": result.splink_edges,
            "shared_keys": result.shared_keys, **result.splink,
            "mode": result.mode, "mode_reason": result.mode_reason,
            "new_records": result.new_records, "touched_records": result.touched_records,
            "steps": {k: round(v, 2) for k, v in reporter.step_seconds.items()}}


HELD_OUT = 100  # the incremental phase: one record in HELD_OUT arrives after the first run


def hold_out(project: Path, held_out: int | None) -> int:
    """Point ``customer_records`` at every record but one in ``held_out`` (by a hash of the
    node), or at every record again (``None``, as ``passerelle run`` unifies them).
    Returns the records it then shows."""
    import ibis

    from passerelle.definition import load_project
    from passerelle.model import ENTITIES
    from passerelle.staging.unify import unify_entities

    with _engine(project, None, None) as engine:
        unify_entities(load_project(project), engine)
        if held_out:
            columns = ["_source", "_record_id", *ENTITIES["customers"].field_names, "_issues",
                       "_load_id", "_loaded_at", "_source_file", "_source_row"]
            every = ibis.union(*[engine.table(f"stg_{s}").select(columns)
                                 for s in CUSTOMER_SOURCES])
            node = every._source.concat(":", every._record_id)
            engine.con.create_view("customer_records", every.filter(
                node.hash() % held_out != 0), overwrite=True)
        return engine.count("customer_records")


def same_partition(project: Path, reference: Path) -> dict:
    """Whether two warehouses group the same records into the same persons (ids aside)."""
    with _engine(project, None, None) as engine:
        con = engine.con.con
        con.execute(f"ATTACH '{reference / 'warehouse.duckdb'}' AS reference (READ_ONLY)")
        row = con.execute("""
            SELECT count(*), (SELECT count(*) FROM person_map),
                   (SELECT count(*) FROM reference.person_map),
                   count(DISTINCT a.person_id), count(DISTINCT b.person_id),
                   count(DISTINCT (a.person_id, b.person_id))
            FROM person_map a JOIN reference.person_map b USING (node)""").fetchall()[0]
        con.execute("DETACH reference").fetchall()
    joined, ours, theirs, persons, persons_ref, pairs = row
    return {"same": joined == ours == theirs and persons == persons_ref == pairs,
            "records": joined, "persons": persons, "persons_reference": persons_ref}


def splink_alone(project: Path, memory_limit: str | None, threads: int | None,
                 as_passerelle: bool = False) -> dict:
    """Splink on every customer record: same prepared columns, comparisons, blocking rules,
    training steps and threshold as Passerelle; no keys, no pre-pass, Splink's clustering.

    Training takes Splink's defaults; ``as_passerelle`` uses the options Passerelle's
    training passes (u in one chunk, EM's iterations on agreement-pattern counts)."""
    from splink import Linker, block_on
    from splink.backends.duckdb import DuckDBAPI

    from passerelle.definition import load_project
    from passerelle.identity import probabilistic as pr
    from passerelle.identity import splink_settings as ss
    from passerelle.identity import splink_training as st
    from passerelle.identity.tables import CUSTOMER_RECORDS

    config = load_project(project).identity.probabilistic
    with _engine(project, memory_limit, threads) as engine:
        engine.replace_table("splink_alone_input",
                             pr.prepare(engine.table(CUSTOMER_RECORDS), config))
        records = engine.count("splink_alone_input")
        linker = Linker(DuckDBAPI(connection=engine.con.con).register("splink_alone_input"),
                        ss.build_settings(config), log_level=None)
        strict = [f for f, m in ss.model_shape(config).compared if m in ("name", "date")]
        if len(strict) >= 2:
            linker.training.estimate_probability_two_random_records_match(
                [block_on(*strict)], recall=pr.PRIOR_RECALL)
        options = {"num_chunks": 1} if as_passerelle else {}
        linker.training.estimate_u_using_random_sampling(
            max_pairs=config.training.max_pairs, seed=config.training.seed, **options)
        options = {"estimate_without_term_frequencies": st.EM_ON_PATTERNS} if as_passerelle else {}
        for rule in config.training.em_blocking:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*rule), max_pairs=config.training.max_pairs, **options)
        predictions = linker.inference.predict(threshold_match_probability=config.threshold)
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=config.threshold)
        con = engine.con.con
        pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()
        persons = con.execute(
            f"SELECT count(DISTINCT cluster_id) FROM {clusters.physical_name}").fetchall()
    return {"records": records, "splink_pairs": pairs[0][0], "persons": persons[0][0]}


def accuracy(project: Path, truth: Path) -> dict:
    """Scores of the resolved warehouse against the truth, with the blocking and the
    evidence ceilings."""
    from passerelle.definition import load_project
    from passerelle.identity.report import truth_scores

    definition = load_project(project)
    with _engine(project, None, None) as engine:
        scores = truth_scores(engine, truth)
        ceiling = blocking_ceiling(engine, definition.identity, truth)
    for row in scores["by_source_pair"]:
        for kind in ("blocking", "evidence"):
            row[f"{kind}_ceiling"] = ceiling[kind]["by_source_pair"].get(row["sources"])
    for kind in ("blocking", "evidence"):
        scores["overall"][f"{kind}_ceiling"] = ceiling[kind]["overall"]
    scores["names_only_pairs"] = ceiling["names_only_pairs"]
    return scores


def blocking_ceiling(engine, identity, truth: Path) -> dict:
    """Pairwise recall of the best clustering the candidate pairs allow: true pairs that a
    blocking rule or a key proposes, closed transitively (union-find over those pairs).

    Also the *evidence ceiling*: the same closure over the true pairs that share a value
    beyond their names (a key, or a compared field that is not a name: birth date,
    postcode, street), however weak. Records that share nothing but names with the rest
    of their person (an e-shop account with another e-mail and no birth date, which has no
    postcode) cannot be linked at the target precision: at 100k people a first and last
    name is held by several people. ``names_only_pairs`` counts the true pairs beyond it."""
    from passerelle.identity import probabilistic as pr
    from passerelle.identity.tables import CUSTOMER_RECORDS

    config = identity.probabilistic
    records = engine.table(CUSTOMER_RECORDS)
    prepared = pr.prepare(records, config)
    keys = sorted({k.field for k in identity.keys})
    keyed = records.select(node=pr.node_expr(records), **{f"key_{k}": records[k] for k in keys})
    engine.replace_table("_bench_prepared", prepared.join(keyed, "node"))
    con = engine.con.con
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _bench_truth AS
        SELECT source || ':' || source_id AS node, source, true_person_id AS tid
        FROM read_csv('{truth}', all_varchar = true)""").fetchall()
    key_rules = [f'a."key_{k}" = b."key_{k}"' for k in keys]
    rules = [" AND ".join(f'a."{f}" = b."{f}"' for f in rule) for rule in config.blocking]
    shared = [f'a."{c.field}" = b."{c.field}"' for c in config.comparisons
              if c.method in ("date", "postcode", "address", "text")]

    def any_of(conditions: list[str]) -> str:
        return "coalesce(" + " OR ".join(f"({c})" for c in conditions) + ", false)"

    rows = con.execute(f"""
        WITH t AS (SELECT p.*, t.tid, t.source FROM _bench_prepared p
                   JOIN _bench_truth t USING (node))
        SELECT a.node, b.node, a.source, b.source, {any_of(rules + key_rules)},
               {any_of(shared + key_rules)}
        FROM t a JOIN t b ON a.tid = b.tid AND a.node < b.node""").fetchall()
    engine.drop("_bench_prepared")
    blocking = _closure_recall(rows, 4)
    evidence = _closure_recall(rows, 5)
    return {"blocking": blocking, "evidence": evidence,
            "names_only_pairs": len(rows) - round(evidence["overall"] * len(rows))}


def _closure_recall(rows: list[tuple], flag: int) -> dict:
    """Share of the true pairs (a, b, source a, source b, ...) inside the components of
    the pairs whose column ``flag`` is true, overall and by source pair."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        if row[flag]:
            parent[find(row[0])] = find(row[1])
    total: dict[str, list[int]] = {}
    for a, b, sa, sb, *_ in rows:
        pair = " x ".join(sorted((sa, sb)))
        counts = total.setdefault(pair, [0, 0])
        counts[0] += 1
        counts[1] += find(a) == find(b)
    overall = sum(c[1] for c in total.values()) / max(sum(c[0] for c in total.values()), 1)
    return {"overall": overall, "by_source_pair": {p: c[1] / c[0] for p, c in total.items()}}


# -------------------------------------------------------------------------- the driver
def _phase(name: str, call: str) -> object:
    code = f"import identity as bench\nDETAIL = {call}\n"
    return run_phase(name, code, cwd=HERE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000,
                        help="true people of the accuracy run (0: skip)")
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="customer records of the speed run (0: skip)")
    parser.add_argument("--memory-limit", default="4GB",
                        help="DuckDB memory_limit of every phase (same for both sides)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="regenerate the staged demos")
    parser.add_argument("--no-incremental", action="store_true",
                        help="skip the incremental phases of the speed run")
    parser.add_argument("--score-speed-run", action="store_true",
                        help="also score the speed run's records against their truth "
                        "(accuracy at ~--records records, from the run that trained)")
    args = parser.parse_args()
    report: dict = {"args": vars(args)}
    mem, threads = repr(args.memory_limit), repr(args.threads)

    if args.people:
        root = DATA / f"people-{args.people}"
        print(f"Accuracy: demo of {args.people:,} people", flush=True)
        prep = _phase("generate and stage", f"str(bench.staged_demo({args.people}, "
                      f"bench.Path({str(root)!r}), {args.fresh}))")
        work = repr(str(DATA / "work-accuracy"))
        _phase("copy", f"str(bench.copy_project(bench.Path({str(prep.detail)!r}), "
               f"bench.Path({work})))")
        ident = _phase("identity (train + resolve)",
                       f"bench.passerelle_identity(bench.Path({work}), True, {mem}, {threads})")
        scores = _phase("score", f"bench.accuracy(bench.Path({work}), "
                        f"bench.Path({str(root / 'truth' / 'records.csv')!r}))")
        report["accuracy"] = {"people": args.people, "identity": ident,
                              "scores": scores.detail}
        _print_scores(scores.detail)

    if args.records:
        people = max(100, round(args.records / RECORDS_PER_PERSON))
        root = DATA / f"people-{people}"
        print(f"Speed: demo of {people:,} people (~{args.records:,} customer records)",
              flush=True)
        prep = _phase("generate and stage", f"str(bench.staged_demo({people}, "
                      f"bench.Path({str(root)!r}), {args.fresh}))")
        ours, theirs = repr(str(DATA / "work-passerelle")), repr(str(DATA / "work-splink"))
        later = repr(str(DATA / "work-incremental"))
        for work in (ours, theirs) if args.no_incremental else (ours, theirs, later):
            _phase("copy", f"str(bench.copy_project(bench.Path({str(prep.detail)!r}), "
                   f"bench.Path({work})))")
        phases = [
            _phase("passerelle", f"bench.passerelle_identity(bench.Path({ours}), True, "
                   f"{mem}, {threads})"),
            _phase("passerelle, saved model", f"bench.passerelle_identity(bench.Path({ours}), "
                   f"False, {mem}, {threads})"),
            _phase("splink alone", f"bench.splink_alone(bench.Path({theirs}), {mem}, "
                   f"{threads})"),
        ]
        like = _phase("splink alone, trained with Passerelle's options", "bench.splink_alone("
                      f"bench.Path({theirs}), {mem}, {threads}, as_passerelle=True)")
        report["speed"] = {"people": people, "phases": phases, "splink_alone_as_passerelle": like}
        ours_s, rerun_s, theirs_s = (p.seconds for p in phases)
        print(textwrap.dedent(f"""
            records: {phases[0].detail['records']:,}
            passerelle end to end: {ours_s:.1f}s ({ours_s / theirs_s:.2f}x Splink alone), \
peak {phases[0].peak_mb:,.0f} MB
            passerelle, saved model: {rerun_s:.1f}s ({rerun_s / theirs_s:.2f}x), \
peak {phases[1].peak_mb:,.0f} MB
            splink alone: {theirs_s:.1f}s, peak {phases[2].peak_mb:,.0f} MB
            splink alone, trained with Passerelle's options: {like.seconds:.1f}s (passerelle \
end to end {ours_s / like.seconds:.2f}x, saved model {rerun_s / like.seconds:.2f}x), peak \
{like.peak_mb:,.0f} MB
            CPU seconds (user + system): passerelle {phases[0].cpu_seconds:.1f} \
({phases[0].cpu_seconds / phases[2].cpu_seconds:.2f}x), saved model \
{phases[1].cpu_seconds:.1f} ({phases[1].cpu_seconds / phases[2].cpu_seconds:.2f}x), splink \
alone {phases[2].cpu_seconds:.1f}, with Passerelle's options {like.cpu_seconds:.1f}"""), \
              flush=True)
        if args.score_speed_run:  # the saved model gives the partition the training run gave
            scores = _phase("score the speed run", f"bench.accuracy(bench.Path({ours}), "
                            f"bench.Path({str(root / 'truth' / 'records.csv')!r}))")
            report["speed"]["scores"] = scores.detail
            _print_scores(scores.detail)
        if args.no_incremental:
            print(f"report: {save_report('identity', report)}")
            return
        rebuilt = repr(str(DATA / "work-incremental-rebuilt"))
        _phase("rules without term frequencies",
               f"bench.without_term_frequencies(bench.Path({later}))")
        _phase(f"hold out 1 record in {HELD_OUT}",
               f"bench.hold_out(bench.Path({later}), {HELD_OUT})")
        _phase("passerelle without them (training)", f"bench.passerelle_identity("
               f"bench.Path({later}), True, {mem}, {threads})")
        _phase("they arrive", f"bench.hold_out(bench.Path({later}), None)")
        _phase("copy", f"str(bench.copy_project(bench.Path({later}), bench.Path({rebuilt}), "
               f"keep_model=True))")
        phases.append(_phase("passerelle, incremental", f"bench.passerelle_identity("
                             f"bench.Path({later}), False, {mem}, {threads}, full=False)"))
        same_full = _phase("the same records, full run", f"bench.passerelle_identity("
                           f"bench.Path({rebuilt}), False, {mem}, {threads})")
        check = _phase("same partition as the full run", f"bench.same_partition("
                       f"bench.Path({later}), bench.Path({rebuilt}))")
        report["speed"]["incremental_check"] = check.detail
        inc_s = phases[3].seconds
        inc = phases[3].detail
        print(textwrap.dedent(f"""
            passerelle, incremental ({inc['mode']}: {inc['new_records']:,} new records, \
{inc['touched_records']:,} re-examined): {inc_s:.1f}s ({inc_s / same_full.seconds:.2f}x a \
full run of the same rules and records, {same_full.seconds:.1f}s), peak \
{phases[3].peak_mb:,.0f} MB; same partition as that full run: {check.detail['same']}"""))
    print(f"report: {save_report('identity', report)}")


def _print_scores(scores: dict) -> None:
    def line(name: str, s: dict) -> str:
        def f(v: float | None) -> str:
            return "  -   " if v is None else f"{v:.4f}"
        return (f"  {name:40s} P {f(s['precision'])}  R {f(s['recall'])}  "
                f"F1 {f(s['f1'])}  ceilings: blocking {f(s.get('blocking_ceiling'))} "
                f"evidence {f(s.get('evidence_ceiling'))}  ({s['true_pairs']:,} true pairs)")

    print(line("all", scores["overall"]))
    if "names_only_pairs" in scores:
        print(f"  true pairs sharing nothing but names (beyond the evidence ceiling): "
              f"{scores['names_only_pairs']:,}")
    for row in scores["by_source_pair"]:
        print(line(row["sources"], row))


if __name__ == "__main__":
    main()
