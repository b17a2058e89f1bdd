"""How the whole pipeline's cost grows with size, on DuckDB, PostgreSQL and local Spark.

For each size (people of the demo retailer; its sources hold about 10 records and events a
person) the demo is generated once, then ``passerelle run`` runs on each engine in a fresh
process (its peak memory is its own: the Python process and, for Spark, its JVM). Reported
per engine and size: seconds and peak memory per step (load, stage, checks, unify,
identity, stitch, consent, traits, segments...; memory is the resident size of the run's
process and its children, a Spark JVM included, sampled every 0.2 s), and the ratio of the
whole run to a baseline measured in the same run at the same size: DuckDB reading the same
source files into tables (``read_csv`` -> ``CREATE TABLE``), the least any engine can do.
Then, per step and engine, the exponent b of a least-squares fit of log(seconds) =
a + b log(records): b <= 1.1 is the goal (cost that grows linearly).

    python benchmarks/scale.py                                 # 2k, 6k, 20k people
    python benchmarks/scale.py --sizes 100000,1000000 --engines duckdb,postgres
    python benchmarks/scale.py --engines spark --spark-master 'local[2]'
    python benchmarks/scale.py --sizes '' --merge results/scale-A.json,results/scale-B.json

``--merge`` adds the runs of earlier reports (runs made apart, e.g. one engine at a time on
a shared machine) to the table and the fits; a size and engine measured again here win.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

PG = {"type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
      "database": "postgres"}
GOAL = 1.1

_RUN = """
import passerelle, collections
from _common import TreeMemory
with TreeMemory() as memory:
    with passerelle.open(PROJECT) as project:
        result = project.run()
steps = collections.defaultdict(float)
peaks = collections.defaultdict(float)
for s in result.steps:
    steps[s.step] += (s.finished_at - s.started_at).total_seconds()
    peaks[s.step] = max(peaks[s.step], memory.peak_mb(s.started_at.timestamp(),
                                                      s.finished_at.timestamp()))
DETAIL = {'ok': result.ok, 'errors': [e.reason[:300] for e in result.errors],
          'steps': dict(steps), 'step_peak_mb': dict(peaks), 'tree_peak_mb': memory.peak_mb(),
          'records': sum(r.rows_loaded for r in result.loads.values())}
"""

_BASELINE = """
import duckdb, glob
con = duckdb.connect(WAREHOUSE)
rows = 0
readers = {'csv': "read_csv('{}', all_varchar=true, strict_mode=false, ignore_errors=true, "
                  "null_padding=true{})", 'jsonl': "read_json_auto('{}')",
           'json': "read_json_auto('{}')", 'parquet': "read_parquet('{}')"}
paths = sorted(p for p in glob.glob(DATA + '/**/*', recursive=True)
               if p.rsplit('.', 1)[-1] in readers)
for i, path in enumerate(paths):
    kind = path.rsplit('.', 1)[-1]
    for extra in ('', ", encoding='latin-1'"):
        try:
            source = readers[kind].format(path, *([extra] if kind == 'csv' else []))
            con.execute(f"CREATE OR REPLACE TABLE t{i} AS SELECT * FROM {source}")
            break
        except duckdb.Error:
            if extra:
                raise
    rows += con.execute(f"SELECT count(*) FROM t{i}").fetchone()[0]
DETAIL = {'rows': rows, 'files': len(paths)}
"""


def _engine_config(engine: str, master: str, partitions: int) -> dict:
    if engine == "duckdb":
        return {"type": "duckdb"}
    if engine == "postgres":
        return {**PG, "schema": f"bench_{uuid.uuid4().hex[:8]}"}
    return {"type": "spark", "master": master,
            "settings": {"spark.sql.shuffle.partitions": partitions,
                         "spark.driver.memory": "4g"}}


def _project(demo: Path, target: Path, engine: dict) -> Path:
    import yaml

    shutil.copytree(demo, target, ignore=shutil.ignore_patterns("warehouse.duckdb*",
                                                                 ".passerelle"))
    config = yaml.safe_load((target / "passerelle.yml").read_text("utf-8"))
    config["engine"] = engine
    (target / "passerelle.yml").write_text(yaml.safe_dump(config), "utf-8")
    return target


def fit_exponent(sizes: list[float], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) against log(size)."""
    points = [(math.log(n), math.log(s)) for n, s in zip(sizes, seconds, strict=True)
              if n > 0 and s > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return None if sxx == 0 else sum((x - mx) * (y - my) for x, y in points) / sxx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,6000,20000",
                        help="people of the demo, comma-separated (records are ~10x)")
    parser.add_argument("--engines", default="duckdb,postgres,spark")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-partitions", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--merge", default="",
                        help="earlier reports (JSON, comma-separated) whose runs are added")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    engines = args.engines.split(",")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="passerelle-scale-"))
    setup = "import sys; sys.path[:0] = " + json.dumps(sys.path[:1])
    runs: dict[str, dict[int, dict]] = defaultdict(dict)
    baselines: dict[int, dict] = {}
    for path in filter(None, args.merge.split(",")):
        earlier = json.loads(Path(path).read_text("utf-8"))
        for n, base in earlier["baseline"].items():
            baselines.setdefault(int(n), base)
        for engine, by_size in earlier["runs"].items():
            runs[engine].update({int(n): r for n, r in by_size.items()})
    for size in sizes:
        demo = root / f"n{size}" / "demo"
        print(f"== {size:,} people", flush=True)
        if not demo.exists():
            from passerelle.demo.generate import generate_demo

            generate_demo(demo, demo.parent / "truth", size=size, seed=7)
        # one file per process: several runs may share a --workdir (and its demos)
        warehouse = root / f"base{size}-{uuid.uuid4().hex[:8]}.duckdb"
        base = run_phase("baseline read_csv -> CREATE TABLE", _BASELINE, setup=(
            f"WAREHOUSE = {str(warehouse)!r}; DATA = {str(demo / 'data')!r}"))
        warehouse.unlink(missing_ok=True)
        baselines[size] = {"seconds": base.seconds, "peak_mb": base.peak_mb,
                           "rows": base.detail["rows"]}
        for engine in engines:
            config = _engine_config(engine, args.spark_master, args.spark_partitions)
            project = _project(demo, root / f"n{size}" / f"{engine}-{uuid.uuid4().hex[:8]}",
                               config)
            try:
                phase = run_phase(f"{engine} run", _RUN, setup=f"{setup}; "
                                  f"PROJECT = {str(project)!r}")
            finally:
                if engine == "postgres":
                    from passerelle.engines.postgres import PostgresEngine

                    PostgresEngine(schema=config["schema"]).drop_schema()
                shutil.rmtree(project, ignore_errors=True)
            detail = phase.detail
            if not detail["ok"]:
                print(f"  {engine} run failed: {detail['errors']}", flush=True)
            runs[engine][size] = {"seconds": phase.seconds, "peak_mb": detail["tree_peak_mb"],
                                  "records": detail["records"], "steps": detail["steps"],
                                  "step_peak_mb": detail["step_peak_mb"], "ok": detail["ok"],
                                  "ratio_to_baseline": phase.seconds / base.seconds}
            steps = ", ".join(f"{k} {v:.1f}s/{detail['step_peak_mb'].get(k, 0):.0f}MB"
                              for k, v in detail["steps"].items())
            print(f"    {detail['records']:,} records, peak {detail['tree_peak_mb']:.0f} MB "
                  f"(process and children); {steps}", flush=True)
    sizes = sorted({*sizes, *baselines})
    exponents: dict[str, dict[str, float | None]] = {}
    for engine, by_size in runs.items():
        measured = sorted(by_size)
        records = [by_size[n]["records"] for n in measured]
        names = sorted({k for n in measured for k in by_size[n]["steps"]})
        exponents[engine] = {
            step: fit_exponent(records, [by_size[n]["steps"].get(step, 0.0) for n in measured])
            for step in names}
        exponents[engine]["whole run"] = fit_exponent(
            records, [by_size[n]["seconds"] for n in measured])
    print("\nfitted exponent of cost vs records (goal <= 1.1):")
    for engine, per_step in exponents.items():
        cells = ", ".join(f"{k} {v:.2f}" + (" (!)" if v > GOAL else "")
                          for k, v in per_step.items() if v is not None)
        print(f"  {engine}: {cells}")
    print()
    print(markdown_table(sizes, baselines, runs, exponents))
    path = save_report("scale", {"sizes": sizes, "baseline": baselines, "runs": runs,
                                 "exponents": exponents, "goal_exponent": GOAL})
    print(f"report: {path}")


def markdown_table(sizes: list[int], baselines: dict[int, dict], runs: dict[str, dict],
                   exponents: dict[str, dict[str, float | None]]) -> str:
    """One row per engine and step: seconds and peak memory at each size, the fitted
    exponent; then, per size and step, the fastest engine."""
    head = ["engine", "step", *[f"{n:,} people" for n in sizes], "exponent"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| baseline | read_csv -> CREATE TABLE | " + " | ".join(
        f"{baselines[n]['seconds']:.1f} s, {baselines[n]['peak_mb']:.0f} MB" for n in sizes)
        + " | |")
    for engine, by_size in runs.items():
        steps = sorted({k for r in by_size.values() for k in r["steps"]})
        for step in [*steps, "whole run"]:
            cells = []
            for n in sizes:
                r = by_size.get(n)
                if r is None:
                    cells.append("")
                elif step == "whole run":
                    cells.append(f"{r['seconds']:.1f} s, {r['peak_mb']:.0f} MB "
                                 f"({r['ratio_to_baseline']:.0f}x baseline)")
                else:
                    cells.append(f"{r['steps'].get(step, 0):.1f} s, "
                                 f"{r['step_peak_mb'].get(step, 0):.0f} MB")
            b = exponents.get(engine, {}).get(step)
            lines.append(f"| {engine} | {step} | " + " | ".join(cells)
                         + f" | {'' if b is None else f'{b:.2f}'} |")
    wins = []
    for n in sizes:
        here = {e: r[n] for e, r in runs.items() if n in r}
        if len(here) < 2:
            continue
        steps = sorted({k for r in here.values() for k in r["steps"]})
        best = {s: min(here, key=lambda e: here[e]["steps"].get(s, float("inf")))
                for s in steps}
        whole = min(here, key=lambda e: here[e]["seconds"])
        wins.append(f"- {n:,} people: whole run {whole}; " + ", ".join(
            f"{s} {e}" for s, e in best.items()))
    return "\n".join(lines + (["", "Fastest engine per step:", *wins] if wins else []))


if __name__ == "__main__":
    main()
