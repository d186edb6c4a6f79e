"""Partner analytics benchmark: account linking at a million accounts a side, friend suggestions at 200,000 users.

    .venv/bin/python bench/partner.py                        # both parts at full size
    .venv/bin/python bench/partner.py --quick                # 20,000 a side and 20,000 users: a smoke run
    .venv/bin/python bench/partner.py --part linking --minimal --world harder
    .venv/bin/python bench/partner.py --part suggestions --users 100000 --json
    .venv/bin/python bench/partner.py --part engines         # linking on DuckDB, then on local Spark

(a) **Linking.** For each population (``--world``: ``default``, ``harder`` = ``WorldSpec.harder()``, or
``both``), generate ``--people`` parent users and as many messenger accounts with the confounders of
``cove.partner.population``, timed on its own; write them into a temporary DuckDB store in mirror mode (the
messenger side as if shared for account linking, numbers hashed under a random key, or plain with
``--plain-phones``; ``--minimal`` shares only the number and the vendor id, as the cove default policy's
account_linking purpose does); then ``cove.partner.linking.link`` at ``--target-precision`` (0.98). Printed: the
phases (the audit of the results is apart), the chosen threshold with its estimated and actual precision and
recall, precision and recall at p >= 0.5 / 0.9 / 0.99, the exact-rule baselines, and recall / wrong links per
confounder for the model and for each rule. Targets: linking under 60 s at precision >= 0.98 with recall >= 0.72
(default population) or >= the phone-or-vendor-id rule's (harder one).

(b) **Suggestions.** Generate ``--users`` parent users with about 40 friends each on average (~4 M friendships for
200,000), write them into a temporary store, run ``cove.partner.suggestions.suggest`` (top 10), then
``evaluate_holdout`` (10% of friendships hidden). Printed: wedges, the friends-of-friends time and wedges/s,
the whole ``suggest`` time, P@10 / R@10 / hit@10, and peak RSS. Target: suggestions under 20 s.

(c) **Engines** (``--part engines``, not part of ``both``). The default world of (a) (or ``--world harder``), linked
by the same model on DuckDB and then on a local Spark session (all cores, ``--spark-memory``): their phases side by
side, Spark's own costs (starting the session, moving the tables to it and the predictions back, inside train and
predict), and how far their links agree (``cove.partner.engines.compare_links``). They should be identical.

Each part runs in a forked child process, so each peak RSS is its own. Targets are printed, never fatal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from cove.partner.engines import ENGINES, compare_links, open_engine
from cove.partner.linking import link
from cove.partner.operating_point import DEFAULT_TARGET
from cove.partner.population import WorldSpec, generate
from cove.partner.seed import seed_store
from cove.partner.spark import SparkSettings
from cove.partner.store import open_store
from cove.partner.suggestions import evaluate_holdout, suggest

NOW_MS = 1_700_000_000_000
TARGET_LINK_S = 60.0
TARGET_RECALL = 0.72  # on the default population; on the harder one, the phone-or-vendor-id rule's
TARGET_SUGGEST_S = 20.0
SUGGEST_MEAN_DEGREE = 46.0  # overlapping groups merge some friendships: ~40 realised, ~4 M edges at 200,000


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


WORLDS = {"default": WorldSpec, "harder": WorldSpec.harder}
# Pairwise exact rules the model is compared with: the columns an account and a parent user share exactly.
RULES = {"exact phone": ["phone_e164"], "exact phone or vendor id": ["phone_e164", "vendor_device_id"]}


def bench_linking(args: argparse.Namespace, work: Path, console: Console) -> dict[str, Any]:
    """Link one generated world per ``--world``, each into its own store."""
    worlds = list(WORLDS) if args.world == "both" else [args.world]
    return {name: _link_world(name, args, work, console) for name in worlds}


def linking_store(
    name: str, args: argparse.Namespace, path: Path, console: Console
) -> tuple[duckdb.DuckDBPyConnection, Any, bytes, float, float]:
    """World ``name`` of part (a) in a store at ``path``: (connection, world, key, generate s, store write s)."""
    key = hashlib.sha256(f"bench {args.seed}".encode()).digest()
    start = time.perf_counter()
    world = generate(WORLDS[name](users=args.people, mean_degree=0), args.seed)
    generated = time.perf_counter() - start
    console.print(f"{name}: generated {args.people:,} x {world.accounts.num_rows:,} in {generated:.1f} s")
    conn = open_store(path)
    start = time.perf_counter()
    seed_store(
        conn, world, NOW_MS, mirror=True, phone_key=key, plain_phones=args.plain_phones, device_fields=not args.minimal
    )
    seeded = time.perf_counter() - start
    console.print(f"{name}: wrote the store in {seeded:.1f} s")
    return conn, world, key, generated, seeded


def _link_world(name: str, args: argparse.Namespace, work: Path, console: Console) -> dict[str, Any]:
    conn, world, key, generated, seeded = linking_store(name, args, work / f"linking-{name}.duckdb", console)
    report = link(
        conn, key, NOW_MS, target_precision=args.target_precision, on_phase=lambda p: console.print(f"(a)   {p}")
    )
    conn.register("accounts", world.accounts)
    strata = _by_confounder(conn, [c.name for c in world.accounts.schema if c.type == pa.bool_()])
    conn.close()
    chosen = report.at_threshold
    assert chosen is not None  # generated data has a ground truth
    return {
        "world": name,
        "parent_users": report.users,
        "messenger_accounts": report.subjects,
        "phones": "plain" if args.plain_phones else "hashed",
        "fields": report.fields,
        "generate_s": round(generated, 2),
        "store_write_s": round(seeded, 2),
        "phases_s": {phase: round(seconds, 2) for phase, seconds in report.timings.items()},
        "link_s": round(report.linking_seconds, 2),
        "prior": report.prior,
        "rule_recall": round(report.rule_recall, 4),
        "target_precision": report.target_precision,
        "threshold": round(report.threshold, 4),
        "estimated_precision": round(report.estimated_precision, 4),
        "precision": round(chosen.precision, 4),
        "recall": round(chosen.recall, 4),
        "links_written": report.written,
        "by_method": report.by_method,
        "exact_rejected": report.exact_rejected,
        "scored_pairs": report.scored_pairs,
        "quality": {
            str(q.threshold): {"links": q.links, "precision": round(q.precision, 4), "recall": round(q.recall, 4)}
            for q in report.quality
        },
        "baselines": {
            rule: {"precision": round(q.precision, 4), "recall": round(q.recall, 4)}
            for rule, q in report.baselines.items()
        },
        "by_confounder": strata,
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "target": f"link < {TARGET_LINK_S:.0f} s, P >= {args.target_precision}"
        + (f", R >= {TARGET_RECALL}" if name == "default" else ", R >= the phone-or-vendor-id rule's"),
        "verdict": verdict(
            report.linking_seconds < TARGET_LINK_S
            and chosen.precision >= args.target_precision
            and chosen.recall >= (TARGET_RECALL if name == "default" else report.baselines[list(RULES)[-1]].recall)
        ),
    }


def _by_confounder(conn: duckdb.DuckDBPyConnection, confounders: list[str]) -> dict[str, dict[str, Any]]:
    """Per confounder (and 'all'): accounts, recall (share of those with a parent user linked to it) and wrong
    links (share of all linked to someone else), for the model's links and for each exact rule's pairs."""
    flags = ", ".join(
        f"bool_or(r.user_id = a.user_id) FILTER (WHERE r.rule = '{rule}') AS \"{rule} right\", "
        f"bool_or(r.user_id IS DISTINCT FROM a.user_id) FILTER (WHERE r.rule = '{rule}') AS \"{rule} wrong\""
        for rule in RULES
    )
    rules = " UNION ".join(  # one equi-join per column: an OR in a join condition is a nested loop
        f"SELECT '{rule}' AS rule, a.subject, u.user_id FROM accounts a JOIN users u ON a.{c} = u.{c}"
        for rule, columns in RULES.items()
        for c in columns
    )
    per_account = f"""
        SELECT a.subject, a.user_id IS NOT NULL AS has_user,
               coalesce(l.user_id = a.user_id, false) AS "model right",
               l.user_id IS NOT NULL AND l.user_id IS DISTINCT FROM a.user_id AS "model wrong", {flags},
               {", ".join(f"a.{c}" for c in confounders)}
        FROM accounts a LEFT JOIN links l USING (subject) LEFT JOIN ({rules}) r USING (subject)
        GROUP BY ALL
    """
    out: dict[str, dict[str, Any]] = {}
    for stratum in [*confounders, "all"]:
        where = "true" if stratum == "all" else stratum
        row = conn.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE has_user),
                   {
            ", ".join(
                f'avg(coalesce("{who} right", false)::INT) FILTER (WHERE has_user), '
                f'avg(coalesce("{who} wrong", false)::INT)'
                for who in ["model", *RULES]
            )
        }
            FROM ({per_account}) WHERE {where}""").fetchall()[0]
        if not row[0]:
            continue
        out[stratum] = {"accounts": row[0], "with_user": row[1]}
        for i, who in enumerate(["model", *RULES]):
            out[stratum][who] = {"recall": round(row[2 + 2 * i] or 0.0, 4), "wrong": round(row[3 + 2 * i] or 0.0, 4)}
    return out


def bench_engines(args: argparse.Namespace, work: Path, console: Console) -> dict[str, Any]:
    world = "default" if args.world == "both" else args.world
    conn, _, key, _, _ = linking_store(world, args, work / "engines.duckdb", console)
    spark = SparkSettings(cores=os.cpu_count() or 2, memory=args.spark_memory)
    runs: dict[str, Any] = {}
    links = {}
    for name in ENGINES:
        start = time.perf_counter()
        with open_engine(name, spark) as engine:
            report = link(
                conn,
                key,
                NOW_MS,
                target_precision=args.target_precision,
                engine=engine,
                on_phase=lambda p, n=name: console.print(f"(c) {n} {p}"),
            )
            inside = dict(getattr(engine, "timings", {}))  # Spark's start and table moves
        wall = time.perf_counter() - start
        links[name] = conn.sql("SELECT subject, user_id, probability FROM links").to_arrow_table()
        at = report.at_threshold
        assert at is not None  # generated data has a ground truth
        runs[name] = {
            "phases_s": {phase: round(seconds, 2) for phase, seconds in report.timings.items()},
            "engine_s": {phase: round(seconds, 2) for phase, seconds in inside.items()},
            "link_s": round(report.linking_seconds, 2),
            "wall_s": round(wall, 2),
            "links": report.written,
            "scored_pairs": report.scored_pairs,
            "precision": round(at.precision, 4),
            "recall": round(at.recall, 4),
        }
    conn.close()
    agreement = compare_links(links["duckdb"], links["spark"])
    return {
        "people": args.people,
        "world": world,
        "spark": f"local[{spark.cores}], driver memory {spark.memory}, {spark.partitions} shuffle partitions",
        "runs": runs,
        "agreement": {
            "both": agreement.both,
            "duckdb_only": agreement.only_first,
            "spark_only": agreement.only_second,
            "share_identical": agreement.share_identical,
            "max_probability_gap": agreement.max_probability_gap,
        },
    }


def bench_suggestions(args: argparse.Namespace, work: Path, console: Console) -> dict[str, Any]:
    key = hashlib.sha256(f"bench {args.seed}".encode()).digest()
    start = time.perf_counter()
    world = generate(WorldSpec(users=args.users, mean_degree=SUGGEST_MEAN_DEGREE), args.seed)
    generated = time.perf_counter() - start
    console.print(
        f"(b) generated {args.users:,} users, {world.friendships.num_rows:,} friendships in {generated:.1f} s"
    )
    conn = open_store(work / "suggestions.duckdb")
    seed_store(conn, world, NOW_MS)
    console.print("(b) suggesting")
    start = time.perf_counter()
    report = suggest(conn, key, k=10)
    total = time.perf_counter() - start
    console.print(f"(b) suggested in {total:.1f} s; holdout")
    holdout = evaluate_holdout(conn, key, k=10, seed=args.seed)
    conn.close()
    fof = report.timings["friends_of_friends"]
    return {
        "users": report.users,
        "friendships": report.friendships,
        "generate_s": round(generated, 2),
        "wedges": report.wedges,
        "friends_of_friends_s": round(fof, 2),
        "wedges_per_s": round(report.wedges / fof) if fof else None,
        "suggest_s": round(total, 2),
        "phases_s": {name: round(seconds, 2) for name, seconds in report.timings.items()},
        "suggestions": report.written,
        "by_source": report.by_source,
        "holdout": {
            "hidden": holdout.hidden_edges,
            "users": holdout.users_evaluated,
            "P@10": round(holdout.precision, 4),
            "R@10": round(holdout.recall, 4),
            "hit@10": round(holdout.hit_rate, 4),
            "fof P@10": round(holdout.fof_precision, 4),
            "fof R@10": round(holdout.fof_recall, 4),
            "fof hit@10": round(holdout.fof_hit_rate, 4),
            "random P@10": holdout.random_precision,
        },
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "target": f"suggest < {TARGET_SUGGEST_S:.0f} s",
        "verdict": verdict(total < TARGET_SUGGEST_S),
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def in_child(
    part: Callable[[argparse.Namespace, Path, Console], dict[str, Any]],
    args: argparse.Namespace,
    work: Path,
    console: Console,
) -> dict[str, Any]:
    """Run one part in a forked process, so that its peak RSS is its own."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()
    child = ctx.Process(target=lambda: queue.put(part(args, work, console)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"the {part.__name__} part failed with exit code {child.exitcode}")
    return queue.get()


def print_linking(console: Console, a: dict[str, Any]) -> None:
    world = a["world"]
    console.print(
        f"(a) {world} world: linking {a['parent_users']:,} x {a['messenger_accounts']:,}, {a['phones']} numbers, "
        f"fields {', '.join(a['fields'])}; generated in {a['generate_s']:.1f} s, store written in "
        f"{a['store_write_s']:.1f} s; peak RSS {a['peak_rss_gb']:.1f} GB"
    )
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in a["phases_s"].items())
    console.print(f"(a) {world}: phases (s) {phases}; link total (all but audit) [bold]{a['link_s']:.1f} s[/]")
    console.print(
        f"(a) {world}: prior {a['prior']} (the same-number-and-vendor-id rule finds {a['rule_recall']:.1%} of true "
        f"pairs); threshold [bold]{a['threshold']:.4f}[/] for target precision {a['target_precision']}: "
        f"estimated precision {a['estimated_precision']:.4f}, actual [bold]{a['precision']:.4f}[/], recall "
        f"[bold]{a['recall']:.4f}[/] ({a['links_written']:,} links)"
    )
    quality = Table(title=f"(a) {world}: against the ground truth")
    for column in ("links", "count", "precision", "recall"):
        quality.add_column(column, justify="right")
    for threshold, q in a["quality"].items():
        quality.add_row(f"p >= {threshold}", f"{q['links']:,}", f"{q['precision']:.3f}", f"{q['recall']:.3f}")
    for name, q in a["baselines"].items():
        quality.add_row(name, "", f"{q['precision']:.3f}", f"{q['recall']:.3f}")
    console.print(quality)
    strata = Table(title=f"(a) {world}: recall / wrong links by confounder (model at the threshold; rules pairwise)")
    who = [w for w in next(iter(a["by_confounder"].values())) if w not in ("accounts", "with_user")]
    for column in ("confounder", "accounts", *who):
        strata.add_column(column, justify="right")
    for name, s in a["by_confounder"].items():
        cells = [f"{s[w]['recall']:.3f} / {s[w]['wrong']:.3f}" for w in who]
        strata.add_row(name, f"{s['accounts']:,}", *cells)
    console.print(strata)
    console.print(
        f"(a) {world}: links by method {a['by_method']}; exact matches not linked {a['exact_rejected']}; "
        f"{a['scored_pairs']:,} pairs scored"
    )
    console.print(f"(a) {world}: target {a['target']}: [bold]{a['verdict']}[/]")


def print_report(result: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]Partner analytics[/] on {result['machine']}")
    for a in result.get("linking", {}).values():
        print_linking(console, a)
    if "engines" in result:
        print_engines(console, result["engines"])
    if "suggestions" in result:
        b = result["suggestions"]
        table = Table(title=f"(b) suggestions for {b['users']:,} users, {b['friendships']:,} friendships")
        for column in ("wedges", "friends of friends", "wedges/s", "suggest total", "peak RSS"):
            table.add_column(column, justify="right")
        table.add_row(
            f"{b['wedges']:.3g}",
            f"{b['friends_of_friends_s']:.1f} s",
            f"{b['wedges_per_s']:.3g}",
            f"{b['suggest_s']:.1f} s",
            f"{b['peak_rss_gb']:.1f} GB",
        )
        console.print(table)
        console.print(f"(b) phases {b['phases_s']}")
        h = b["holdout"]
        console.print(
            f"(b) holdout ({h['hidden']:,} hidden, {h['users']:,} users): P@10 {h['P@10']:.3f}, "
            f"R@10 {h['R@10']:.3f}, hit@10 {h['hit@10']:.3f}; friends of friends alone P@10 "
            f"{h['fof P@10']:.3f}, R@10 {h['fof R@10']:.3f}, hit@10 {h['fof hit@10']:.3f}; "
            f"random P@10 {h['random P@10']:.2g}"
        )
        console.print(f"(b) target {b['target']}: [bold]{b['verdict']}[/]")


def print_engines(console: Console, c: dict[str, Any]) -> None:
    runs = c["runs"]
    table = Table(title=f"(c) linking {c['people']:,} x {c['people']:,} on each engine (seconds)")
    table.add_column("phase")
    for name in runs:
        table.add_column(name, justify="right")
    for phase in runs["duckdb"]["phases_s"]:
        table.add_row(phase, *(f"{run['phases_s'].get(phase, 0):.2f}" for run in runs.values()))
    inside = {"to_spark": "  of which tables to Spark", "from_spark": "  of which predictions back"}
    for phase, label in inside.items():
        table.add_row(label, *(f"{run['engine_s'].get(phase, 0):.2f}" for run in runs.values()))
    table.add_row("link total (all but audit)", *(f"{run['link_s']:.2f}" for run in runs.values()))
    table.add_row("session start (before link)", *(f"{run['engine_s'].get('start', 0):.2f}" for run in runs.values()))
    table.add_row("wall, with session start", *(f"{run['wall_s']:.2f}" for run in runs.values()))
    table.add_row("links at the chosen threshold", *(f"{run['links']:,}" for run in runs.values()))
    table.add_row(
        "P / R at the chosen threshold", *(f"{run['precision']:.4f} / {run['recall']:.4f}" for run in runs.values())
    )
    console.print(table)
    a = c["agreement"]
    console.print(
        f"(c) Spark {c['spark']}; links on both {a['both']:,}, DuckDB only {a['duckdb_only']:,}, Spark only "
        f"{a['spark_only']:,} ({a['share_identical']:.2%} identical); largest probability gap "
        f"{a['max_probability_gap']:.2g}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000, help="(a) parent users = messenger accounts")
    parser.add_argument("--users", type=int, default=200_000, help="(b) parent users (default 200000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the worlds (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 a side and 20,000 users")
    parser.add_argument("--part", choices=["both", "linking", "suggestions", "engines"], default="both")
    parser.add_argument("--plain-phones", action="store_true", help="(a) share numbers unhashed (fuzzy matching)")
    parser.add_argument("--minimal", action="store_true", help="(a) share only number and vendor id for linking")
    parser.add_argument("--spark-memory", default="4g", help="(c) the Spark driver's memory (default 4g)")
    parser.add_argument("--world", choices=["both", *WORLDS], default="both", help="(a) generator(s) to link")
    parser.add_argument(
        "--target-precision", type=float, default=DEFAULT_TARGET, help="(a) precision the threshold aims at"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if args.quick:
        args.people, args.users = 20_000, 20_000
    if args.people < 100 or args.users < 100:
        parser.error("--people and --users must be at least 100")
    if not 0 < args.target_precision <= 1:
        parser.error("--target-precision must be in (0, 1]")
    return args


def main() -> None:
    args = parse_args()
    console = Console(stderr=True)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="cove-partner-bench-") as tmp:
        if args.part in ("both", "linking"):
            result["linking"] = in_child(bench_linking, args, Path(tmp), console)
        if args.part in ("both", "suggestions"):
            result["suggestions"] = in_child(bench_suggestions, args, Path(tmp), console)
        if args.part == "engines":
            result["engines"] = in_child(bench_engines, args, Path(tmp), console)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
