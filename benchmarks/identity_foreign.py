"""Identity on person lists we did not generate with the demo: accuracy and speed against
Splink alone with a standard model.

The data (``tests/foreign_people.py``): German person lists drawn with Faker's ``de_DE``
provider, two lists with their own columns and date formats, duplicates across the lists and
within one, typos, spelled-out umlauts, moves, missing values, a tax id (hashed at staging)
missing on a quarter of the records or with a digit typo; no e-mail, no phone.

Phases, each in its own process with its peak memory (``_common.run_phase``):

- ``passerelle``: ``passerelle run`` on the project (load, staging, identity with the
  configuration docs/identity-matching.md recommends: the tax id as a key, names, birth
  date, postcode with the street line, city, ``blocking: auto``);
- ``splink alone``: on the same staged records, Splink 5 with a standard model from its
  comparison library (``NameComparison`` first and last name, ``DateOfBirthComparison``,
  ``ExactMatch`` postcode, city and tax id, ``LevenshteinAtThresholds`` street line), an
  exhaustive-enough blocking (any one of those fields equal: its recall ceiling is reported),
  trained as Splink's tutorials do (prior from an exact rule, u by random sampling, EM on
  names and on birth date), ``predict`` and clustering at 0.95.

Both are scored pairwise (precision, recall, F1) against the truth. Timings are given as the
ratio of Passerelle's to Splink alone's, measured in the same run.

    python benchmarks/identity_foreign.py                  # 20,000 people (~30,000 records)
    python benchmarks/identity_foreign.py --people 3000    # a quick run
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

HERE = Path(__file__).parent
DATA = HERE / ".data" / "identity_foreign"
SRC = HERE.parent / "src"
TESTS = HERE.parent / "tests"
THRESHOLD = 0.95


def build(people: int, seed: int, fresh: bool) -> Path:
    root = DATA / f"p{people}-s{seed}"
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
    if not (root / "truth.csv").exists():
        sys.path.insert(0, str(TESTS))
        from foreign_people import write_project

        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        write_project(root, people, seed)
    for stale in ("warehouse.duckdb", "warehouse.duckdb.wal", "identity"):
        path = root / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    return root


def passerelle_run(root: Path) -> dict:
    """``passerelle run`` end to end, then the pairwise scores against the truth."""
    import passerelle
    from passerelle.identity.report import truth_scores

    with passerelle.open(root) as project:
        project.run()
        scores = truth_scores(project.engine, root / "truth.csv")["overall"]
        records = project.engine.count("customer_records")
    return {"records": records, **scores}


def pairwise(assigned: dict[str, str], truth: dict[str, str]) -> dict:
    """Pairwise precision, recall and F1 of a partition (node -> cluster) against the truth
    (node -> person)."""
    from collections import Counter

    def pairs(counter: Counter) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    nodes = [n for n in truth if n in assigned]
    predicted = pairs(Counter(assigned[n] for n in nodes))
    true = pairs(Counter(truth[n] for n in nodes))
    both = pairs(Counter((assigned[n], truth[n]) for n in nodes))
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"predicted_pairs": predicted, "true_pairs": true, "true_positive_pairs": both,
            "precision": precision, "recall": recall, "f1": f1}


def read_truth(root: Path) -> dict[str, str]:
    import csv

    with (root / "truth.csv").open(encoding="utf-8") as handle:
        return {f"{r['source']}:{r['source_id']}": r["true_person_id"]
                for r in csv.DictReader(handle)}


SPLINK_FIELDS = ("first_name", "last_name", "birth_date", "postcode", "address_line1", "city",
                 "national_id")


def splink_alone(root: Path) -> dict:
    """Splink 5 alone, standard comparisons, exhaustive-enough blocking, on the staged
    records a copy of the Passerelle run left (the same staging for both)."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    from passerelle.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(root / "warehouse.duckdb")
    con = engine.con.con
    con.execute("DROP TABLE IF EXISTS splink_alone_input")
    con.execute(
        "CREATE TABLE splink_alone_input AS SELECT _source || ':' || _record_id AS unique_id, "
        + ", ".join(SPLINK_FIELDS) + " FROM customer_records").fetchall()
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name"), cl.NameComparison("last_name"),
            cl.DateOfBirthComparison("birth_date", input_is_string=False),
            cl.ExactMatch("postcode"), cl.LevenshteinAtThresholds("address_line1", [1, 3]),
            cl.ExactMatch("city"), cl.ExactMatch("national_id"),
        ],
        blocking_rules_to_generate_predictions=[block_on(f) for f in SPLINK_FIELDS
                                                if f != "address_line1"],
    )
    linker = Linker(DuckDBAPI(connection=con).register("splink_alone_input"), settings,
                    log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "birth_date")], recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=2_000_000, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("first_name", "last_name"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("birth_date"))
    predictions = linker.inference.predict(threshold_match_probability=THRESHOLD)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=THRESHOLD)
    rows = con.execute(
        f"SELECT unique_id, cluster_id FROM {clusters.physical_name}").fetchall()
    truth = read_truth(root)
    # the share of true pairs the blocking compares: equal on one of its fields
    con.execute("DROP TABLE IF EXISTS bench_truth")
    con.execute("CREATE TABLE bench_truth (unique_id VARCHAR, person VARCHAR)").fetchall()
    con.executemany("INSERT INTO bench_truth VALUES (?, ?)", list(truth.items()))
    agree = " OR ".join(f"a.{f} = b.{f}" for f in SPLINK_FIELDS if f != "address_line1")
    hit, total = con.execute(
        "SELECT count(*) FILTER (WHERE " + agree + "), count(*) FROM bench_truth ta "
        "JOIN bench_truth tb ON ta.person = tb.person AND ta.unique_id < tb.unique_id "
        "JOIN splink_alone_input a ON a.unique_id = ta.unique_id "
        "JOIN splink_alone_input b ON b.unique_id = tb.unique_id").fetchall()[0]
    engine.close()
    scores = pairwise({u: str(c) for u, c in rows}, truth)
    return {"records": len(rows), **scores,
            "blocking_recall_ceiling": hit / total if total else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fresh", action="store_true", help="generate the lists again")
    args = parser.parse_args()
    root = build(args.people, args.seed, args.fresh)
    print(f"Person lists of {args.people:,} people in {root}", flush=True)
    setup = (f"import sys; sys.path[:0] = [{str(SRC)!r}, {str(HERE)!r}]\n"
             "from pathlib import Path\nimport identity_foreign as bench\n"
             "import passerelle, splink")
    ours = run_phase("passerelle", f"DETAIL = bench.passerelle_run(Path({str(root)!r}))",
                     setup=setup)
    alone = run_phase("splink alone", f"DETAIL = bench.splink_alone(Path({str(root)!r}))",
                      setup=setup)
    report = {
        "people": args.people, "seed": args.seed,
        "passerelle": {"seconds": round(ours.seconds, 2), "peak_mb": round(ours.peak_mb),
                       **ours.detail},
        "splink_alone": {"seconds": round(alone.seconds, 2), "peak_mb": round(alone.peak_mb),
                         **alone.detail},
        "ratio_seconds": round(ours.seconds / alone.seconds, 3),
        "ratio_peak_memory": round(ours.peak_mb / alone.peak_mb, 3),
        "note": "passerelle's time includes loading and staging the CSV files; Splink alone "
                "starts from the staged records.",
    }
    for name in ("passerelle", "splink_alone"):
        part = report[name]
        print(f"{name:>13}: precision {part['precision']:.4f}  recall {part['recall']:.4f}  "
              f"F1 {part['f1']:.4f}  ({part['records']:,} records, {part['seconds']:.1f}s, "
              f"peak {part['peak_mb']:,} MB)")
    print(f"Splink alone's blocking recall ceiling: "
          f"{report['splink_alone']['blocking_recall_ceiling']:.4f}")
    print(f"time ratio passerelle / splink alone: {report['ratio_seconds']}x; "
          f"peak memory ratio {report['ratio_peak_memory']}x")
    print(f"Report: {save_report('identity_foreign', report)}")


if __name__ == "__main__":
    main()
