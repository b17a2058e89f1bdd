"""Writing the decision store to Redis, and updating it for touched people, on a demo.

    python benchmarks/redis_store.py --project DIR [--memory-limit 4GB]

On an existing demo project (a copy: the phases write its warehouse), each phase in a
process of its own (its peak memory its own):

- ``warehouse``: the baseline, the serving tables rebuilt in the warehouse alone
  (``refresh_store`` without Redis: SQL only);
- ``redis``: the same followed by the copy to Redis (``load_redis``: commands built in SQL,
  written as a new generation, then switched); reported with its ratio to the baseline,
  the keys written and the memory Redis took;
- ``touched``: the serving store (warehouse and Redis) updated for 100 people whose events
  just changed, as the event-driven refresh does.

The keys are written under a prefix of this run's own, deleted at the end. Reports go to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import run_phase, save_report

SRC = Path(__file__).resolve().parents[1] / "src"
REDIS = "redis://127.0.0.1:6379/0"


def _setup(root: Path) -> str:
    return textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(SRC)!r})
        import passerelle
        from passerelle.personalize.service import refresh_store
        project = passerelle.open({str(root)!r})
        project.engine.con.con.execute("SET enable_progress_bar = false")  # stdout: JSON
        """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True,
                        help="a demo project (a copy: its warehouse is written)")
    args = parser.parse_args()
    root = args.project.resolve()
    prefix = f"bench:store:{os.getpid()}:"
    sys.path.insert(0, str(SRC))
    import redis
    from decide import FILES, touched

    for name, text in FILES.items():  # the decide benchmark's placement and offers
        path = root / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
    r = redis.Redis.from_url(REDIS)
    report: dict = {"project": str(root), "load": os.getloadavg()}
    try:
        base = run_phase("warehouse store (baseline)", textwrap.dedent("""\
            s = refresh_store(project.root, project.engine)
            DETAIL = {"people": s.people, "ids": s.ids}
            project.close()
            """), setup=_setup(root))
        before = r.info("memory")["used_memory"]
        load = run_phase("warehouse store + Redis", textwrap.dedent(f"""\
            s = refresh_store(project.root, project.engine, redis_url={REDIS!r},
                              redis_prefix={prefix!r})
            DETAIL = {{"people": s.people, "ids": s.ids}}
            project.close()
            """), setup=_setup(root))
        keys = sum(1 for _ in r.scan_iter(match=f"{prefix}*", count=10_000))
        report["warehouse"] = {"seconds": round(base.seconds, 1),
                               "peak_mb": round(base.peak_mb), **base.detail}
        report["redis"] = {"seconds": round(load.seconds, 1), "peak_mb": round(load.peak_mb),
                           "redis_seconds": round(load.seconds - base.seconds, 1),
                           "vs_baseline": round(load.seconds / max(base.seconds, 1e-3), 2),
                           "keys": keys, "redis_mb": round(
                               (r.info("memory")["used_memory"] - before) / 2**20),
                           **load.detail}
        config = root / "passerelle.yml"
        text = config.read_text()
        if "personalisation:" not in text:
            config.write_text(text + f"\npersonalisation:\n  redis_url: {REDIS}\n"
                              f"  redis_prefix: \"{prefix}\"\n")
        try:
            report["touched"] = touched(root)
        finally:
            config.write_text(text)
        report["load_after"] = os.getloadavg()
        w, x = report["warehouse"], report["redis"]
        print(f"  {w['people']:,} people, {w['ids']:,} identifiers; warehouse store "
              f"{w['seconds']}s (peak {w['peak_mb']} MB); with Redis {x['seconds']}s "
              f"(x{x['vs_baseline']}; Redis part ~{x['redis_seconds']}s, peak "
              f"{x['peak_mb']} MB, {x['keys']:,} keys, {x['redis_mb']} MB in Redis); "
              f"100 touched people {report['touched']['seconds']}s; load "
              f"{report['load'][0]:.1f}", flush=True)
        print(f"report: {save_report('redis_store', report)}")
    finally:
        keys = list(r.scan_iter(match=f"{prefix}*", count=10_000))
        for i in range(0, len(keys), 10_000):
            r.unlink(*keys[i:i + 10_000])


if __name__ == "__main__":
    main()
