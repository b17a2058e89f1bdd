"""Why identity misses true pairs: the missed pairs of a resolved demo warehouse, by source
pair, by which prepared fields agree, by which blocking rule would propose them and by the
score the saved model gives them.

Run it on a warehouse that ``benchmarks/identity.py`` resolved (its ``work-accuracy`` or
``work-passerelle`` copy) with the demo's truth::

    python benchmarks/identity_missed.py benchmarks/.data/identity/work-passerelle \\
        benchmarks/.data/identity/people-518135/truth/records.csv --memory-limit 4GB

A *missed pair* is two records of one true person in two persons of ``person_map``. Each
is scored again with the saved model (Splink's predict over the same blocking rules at a
low threshold: a pair no rule proposes has no score). For the record of the pair that is
a newsletter sign-up (or the first one), ``rivals`` counts the records of *other* true
people that score at least as high with it: 0 means the true person was its best
candidate, which a rule linking a record to its only plausible person could use.
Reports go to ``benchmarks/results/identity_missed-*.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import save_report

FLOOR = 0.01  # lowest match probability kept when scoring again
BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9)


def analyse(project: Path, truth: Path, memory_limit: str | None) -> dict:
    import ibis

    from passerelle.definition import load_project
    from passerelle.engines.duckdb import DuckDBEngine
    from passerelle.identity import splink_settings as ss
    from passerelle.identity.splink_input import prepare
    from passerelle.identity.splink_model import load_model
    from passerelle.identity.splink_session import (
        _splink_session,
        rescale_for_model,
        term_frequency_tables,
    )
    from passerelle.identity.tables import CUSTOMER_RECORDS

    config = load_project(project).identity.probabilistic
    fields = [c.field for c in config.comparisons]
    with DuckDBEngine(project / "warehouse.duckdb", memory_limit=memory_limit) as engine:
        con = engine.con.con
        engine.replace_table("_miss_input", prepare(engine.table(CUSTOMER_RECORDS), config))
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _miss_truth AS
            SELECT source || ':' || source_id AS node, source, true_person_id AS tid
            FROM read_csv('{truth}', all_varchar = true)""").fetchall()
        con.execute("""CREATE OR REPLACE TEMP TABLE _miss_pairs AS
            WITH t AS (SELECT t.*, m.person_id FROM _miss_truth t
                       JOIN person_map m ON m.node = t.node)
            SELECT a.node AS node_a, b.node AS node_b, a.source AS source_a,
                   b.source AS source_b, a.tid
            FROM t a JOIN t b ON a.tid = b.tid AND a.node < b.node
            WHERE a.person_id <> b.person_id""").fetchall()
        model = load_model(config.model_file(project), config)
        shape = ss.model_shape(config)
        with term_frequency_tables(engine, shape.term_frequency_fields, "_miss_input") as tf:
            rescale_for_model(engine, tf, model, "_miss_input")
            with _splink_session(engine, "_miss_input", model, tf_tables=tf) as linker:
                scored = linker.inference.predict(threshold_match_probability=FLOOR)
                engine.replace_table("_miss_scores", engine.table(scored.physical_name).select(
                    "node_l", "node_r", "match_probability"))
        # the side to explain: the sign-up when there is one
        con.execute("""CREATE OR REPLACE TEMP TABLE _miss_sides AS
            SELECT p.*, CASE WHEN source_b = 'newsletter_signups' THEN node_b ELSE node_a END
                   AS focus,
                   CASE WHEN source_b = 'newsletter_signups' THEN node_a ELSE node_b END
                   AS other
            FROM _miss_pairs p""").fetchall()
        agree = ", ".join(
            f"""CASE WHEN a."{f}" IS NULL OR b."{f}" IS NULL THEN '-'
                     WHEN a."{f}" = b."{f}" THEN '=' ELSE 'x' END AS "{f}" """
            for f in fields)
        rules = " , ".join(
            "coalesce(" + " AND ".join(f'a."{f}" = b."{f}"' for f in rule) + ", false) AS "
            + '"rule_' + "+".join(rule) + '"' for rule in config.blocking_rules)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _miss_detail AS
            WITH s AS (SELECT least(node_l, node_r) AS x, greatest(node_l, node_r) AS y,
                              match_probability FROM _miss_scores),
                 both_ AS (SELECT focus, node_l AS cand, match_probability FROM _miss_scores
                           JOIN _miss_sides ON focus = node_r
                           UNION ALL
                           SELECT focus, node_r, match_probability FROM _miss_scores
                           JOIN _miss_sides ON focus = node_l)
            SELECT p.source_a, p.source_b, p.focus, p.other, s.match_probability AS score,
                   {agree}, {rules},
                   (SELECT count(*) FROM both_ c JOIN _miss_truth t ON t.node = c.cand
                    WHERE c.focus = p.focus AND t.tid <> p.tid
                      AND c.match_probability >= coalesce(s.match_probability, 0))
                   AS rivals
            FROM _miss_sides p
            JOIN _miss_input a ON a.node = p.focus JOIN _miss_input b ON b.node = p.other
            LEFT JOIN s ON s.x = least(p.focus, p.other) AND s.y = greatest(p.focus, p.other)
            """).fetchall()
        detail = engine.table("_miss_detail")

        def rows(expr: ibis.Table) -> list[dict]:
            return engine.to_arrow(expr).to_pylist()

        total = engine.count("_miss_detail")
        rule_cols = [c for c in detail.columns if c.startswith("rule_")]
        caught = ibis.or_(*[detail[c] for c in rule_cols]) if rule_cols else ibis.literal(False)

        def band(t: ibis.Table) -> ibis.StringValue:
            return ibis.cases(*[(t.score >= b, f">= {b}") for b in reversed(BANDS)],
                              else_="no score (not blocked or below the floor)")

        alone = detail.filter(detail.rivals == 0)
        out = {
            "missed_pairs": total,
            "by_source_pair": rows(detail.group_by(["source_a", "source_b"]).aggregate(
                n=detail.count()).order_by(ibis.desc("n"))),
            "by_score_band": rows(detail.group_by(band=band(detail)).aggregate(
                n=detail.count(), no_rival=(detail.rivals == 0).sum()).order_by("band")),
            "by_agreement": rows(detail.group_by(fields).aggregate(
                n=detail.count(), scored=detail.score.notnull().sum(),
                no_rival=(detail.rivals == 0).sum(),
                mean_score=detail.score.mean()).order_by(ibis.desc("n")).limit(25)),
            "by_rule": {c: int(rows(detail.aggregate(n=detail[c].sum()))[0]["n"] or 0)
                        for c in rule_cols},
            "no_rule": int(rows(detail.aggregate(n=(~caught).sum()))[0]["n"] or 0),
            "scored_no_rival_by_band": rows(alone.group_by(band=band(alone)).aggregate(
                n=alone.count()).order_by("band")),
        }
        for name in ("_miss_input", "_miss_scores"):
            engine.drop(name)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path, help="a resolved demo project (warehouse)")
    parser.add_argument("truth", type=Path, help="its truth/records.csv")
    parser.add_argument("--memory-limit", default="4GB")
    args = parser.parse_args()
    out = analyse(args.project, args.truth, args.memory_limit)
    print(f"missed pairs: {out['missed_pairs']:,}; proposed by no blocking rule: "
          f"{out['no_rule']:,}")
    for key in ("by_source_pair", "by_score_band", "scored_no_rival_by_band", "by_agreement"):
        print(f"\n{key}:")
        for row in out[key]:
            print("  " + "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()))
    print("\nby rule:", out["by_rule"])
    given = {"project": str(args.project), "truth": str(args.truth)}
    print(f"report: {save_report('identity_missed', {'args': given, **out})}")


if __name__ == "__main__":
    main()
