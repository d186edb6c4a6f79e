"""How well and how cheaply the detector catches abuse: the simulator's populations through the detector's own
counters, features, rules and model, then two real relays side by side for the cost of a send.

    .venv/bin/python bench/safety.py                 # 40,000 accounts to train, 40,000 others to measure
    .venv/bin/python bench/safety.py --quick         # a CI smoke run: about a minute
    .venv/bin/python bench/safety.py --no-relay      # the detection figures only

How a run goes:

1. Simulate two runs of the populations in cove/safety/simulation/populations.toml (seeds S and S + 1), each of
   ``--days`` days (cove.safety.training.DAYS: two): one to train on, one to measure on, so no account is
   judged by a model that saw it.
2. Train: replay the first run through fresh counters (cove.safety.training.replay: a row of features after
   each account's first few acts and at every hour's end) and fit the LightGBM model (cove.safety.model). A row
   is labelled abusive from when the account is the abuser's (a hijacked account: from its take-over).
3. Measure: replay the second run the same way and judge it with cove.safety.training.evaluate, as
   `cove safety train` does: an account is acted on at the first row where the model's score reaches the
   threshold or a rule fires (cove.safety.rules). The threshold is set so that the given share of legitimate
   accounts (1e-3, 1e-4) is ever acted on, rules included; if the rules alone flag more, the threshold cannot
   help and the report says so. A hijacked account is caught only by an action after its take-over (before
   it, the account is its honest owner's).
4. Relay cost: two relays, one with the detector off (COVE_SAFETY_DETECTOR=false), one with it on and the
   model just trained, automatic actions off on both so the bench senders are not throttled; the same
   fixed-rate load of real Olm messages over WebSockets (bench/relay.py) to both at the same time; relay CPU
   per message, on minus off. The detector's own cost per send, measured in this process without a relay,
   comes with it (cove.safety.detector.observe_cost_ms).

What the figures mean: the populations' parameters are assumptions a reviewer can challenge; they, not the
model, drive the numbers (docs/safety.md). Recall is per account over the run; a false positive is a
legitimate account acted on at least once in it, at the mildest step the threshold asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rich.table import Table

from cove.activity import Action, Outbound
from cove.safety import training
from cove.safety.detector import observe_cost_ms
from cove.safety.model import Model
from cove.safety.signals import Reported
from cove.safety.simulation.config import load
from cove.safety.simulation.generator import Event, Simulation, simulate
from harness import command, local_relay, machine, report_console

RATES = (1e-3, 1e-4)
RELAY_KEYS = ("delivered_per_s", "relay_cpu_ms_per_message", "latency_p50_ms", "latency_p99_ms", "errors")
SENDS = (Action.MESSAGE, Action.GROUP_MESSAGE)


# Detection ---------------------------------------------------------------------------------------------
class Witness:
    """What happened to each account in the stream, to tell how far an abuser got before the first action:
    the instants of its sends and of the first report against it."""

    def __init__(self, simulation: Simulation) -> None:
        self.index = {a.account_id: i for i, a in enumerate(simulation.accounts)}
        self.sends: list[list[int]] = [[] for _ in simulation.accounts]
        self.first_report = np.full(len(simulation.accounts), np.iinfo(np.int64).max)
        self.events = 0

    def watch(self, events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            self.events += 1
            if isinstance(event, Outbound) and event.action in SENDS:
                self.sends[self.index[event.sender]].append(event.at_ms)
            elif isinstance(event, Reported):
                i = self.index[event.subject]
                self.first_report[i] = min(self.first_report[i], event.at_ms)
            yield event

    def sent_by(self, account: int, at_ms: int) -> int:
        return int(np.searchsorted(self.sends[account], at_ms, side="right"))


def run(args: argparse.Namespace, seed: int) -> Simulation:
    config = load()
    return simulate(replace(config, days=args.days), seed, args.accounts)


def train(args: argparse.Namespace, say) -> tuple[Model, dict[str, Any]]:
    simulation = run(args, args.seed)
    started = time.perf_counter()
    dataset = training.replay(simulation.accounts, simulation.events())
    say(f"training set: {len(dataset):,} rows from {args.accounts:,} accounts in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    model = training.fit(dataset, simulation.accounts, seed=args.seed)
    return model, {"rows": len(dataset), "fit_seconds": round(time.perf_counter() - started, 1)}


def measure(args: argparse.Namespace, model: Model, say) -> dict[str, Any]:
    simulation = run(args, args.seed + 1)
    witness = Witness(simulation)
    started = time.perf_counter()
    dataset = training.replay(simulation.accounts, witness.watch(simulation.events()))
    replayed = time.perf_counter() - started
    started = time.perf_counter()
    model.score(dataset.rows)
    scored = time.perf_counter() - started
    say(f"measured on {len(dataset):,} rows of {witness.events:,} events")
    evaluation = training.evaluate(model, dataset, simulation.accounts, RATES)
    return {
        "accounts": evaluation.accounts,
        "days": simulation.config.days,
        "events": witness.events,
        "rows": len(dataset),
        "replay_events_per_s": round(witness.events / replayed),
        "model_rows_per_s": round(len(dataset) / scored) if scored else None,
        "legitimate_flagged_by_rules": evaluation.legitimate_ruled,
        "at": {f"{rate:g}": _outcome(simulation, witness, dataset, evaluation, rate) for rate in RATES},
    }


def _outcome(
    simulation: Simulation, witness: Witness, dataset: training.Dataset, evaluation: training.Evaluation, rate: float
) -> dict[str, Any]:
    """training.evaluate's figures at one rate, with how far the abusers it caught got before the action."""
    accounts = simulation.accounts
    when = {i: int(dataset.at_ms[row]) for i, row in evaluation.first_action[rate].items()}
    caught = [i for i in when if accounts[i].abusive]
    before = {i: witness.sent_by(i, when[i]) for i in caught}
    by_type: dict[str, list[int]] = {}
    for i in caught:
        by_type.setdefault(accounts[i].abuse_type or accounts[i].population, []).append(before[i])
    return {
        "threshold": evaluation.thresholds[rate],
        "recall": round(evaluation.recall[rate]["all"], 4),
        "recall_by_type": {t: round(v, 4) for t, v in evaluation.recall[rate].items() if t != "all"},
        "flagged_by_population": {p: round(v, 4) for p, v in evaluation.flagged[rate].items()},
        "before_any_report": round(float(np.mean([when[i] < witness.first_report[i] for i in caught])), 3)
        if caught
        else None,
        "at_registration": round(float(np.mean([before[i] == 0 for i in caught])), 3) if caught else None,
        "median_messages_before_action": float(np.median(list(before.values()))) if caught else None,
        "median_messages_before_action_by_type": {t: float(np.median(v)) for t, v in sorted(by_type.items())},
    }


# Relay cost --------------------------------------------------------------------------------------------
def relay_cost(args: argparse.Namespace, model: Model, workdir: Path, say) -> dict[str, Any]:
    """Relay CPU per message with the detector off and on: two relays under the same load at the same time,
    so that whatever else runs on the machine weighs on both alike."""
    import relay as relay_bench  # bench/relay.py: its users, Olm sessions and WebSocket load

    model_path = workdir / "detector.txt"
    model.save(model_path)
    common = {"COVE_SAFETY_AUTOMATIC_ACTIONS": "false"}
    sides = {
        "off": {**common, "COVE_SAFETY_DETECTOR": "false"},
        "on": {**common, "COVE_SAFETY_DETECTOR": "true", "COVE_SAFETY_MODEL_PATH": str(model_path)},
    }
    load_args = SimpleNamespace(
        mode="relay",
        pairs=args.pairs,
        rate=args.rate,
        window=32,
        seconds=args.seconds,
        warmup=args.warmup,
        database_url=None,
        workers=1,
    )
    relays = {}
    for side, env in sides.items():
        (workdir / side).mkdir()
        relays[side] = local_relay(workdir / side, None, env)
    budget = 90 + 2 * args.pairs + args.warmup + args.seconds + relay_bench.DRAIN_SECONDS

    async def both() -> list[dict[str, Any]]:
        say(f"two relays, detector off and on: {args.pairs} pairs at {args.rate:g} msg/s each for {args.seconds:g} s")
        runs = (relay_bench.run(load_args, r, i, workdir / side) for side, (r, i) in relays.items())
        return await asyncio.wait_for(asyncio.gather(*runs), budget)

    try:
        for r, _ in relays.values():
            r.start()
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            off, on = (run["results"] for run in runner.run(both()))
    finally:
        for r, inbox in relays.values():
            r.stop()
            inbox.close()
    added = None
    if on["relay_cpu_ms_per_message"] is not None and off["relay_cpu_ms_per_message"] is not None:
        added = round(on["relay_cpu_ms_per_message"] - off["relay_cpu_ms_per_message"], 4)
    return {"off": _relay_summary(off), "on": _relay_summary(on), "added_cpu_ms_per_message": added}


def _relay_summary(results: dict[str, Any]) -> dict[str, Any]:
    return {k: results[k] for k in RELAY_KEYS}


# Report ------------------------------------------------------------------------------------------------
def print_report(result: dict[str, Any]) -> None:
    console = report_console(result)
    s = result["settings"]
    console.print(
        f"[bold]settings[/bold]  {s['accounts']:,} accounts to train and {s['accounts']:,} to measure, "
        f"{s['days']} simulated day(s) each, seed {s['seed']}"
    )
    m = result["detection"]
    console.print(
        f"replay {m['replay_events_per_s']:,} events/s (counters + features, simulator included); model "
        f"{m['model_rows_per_s']:,} rows/s; observe {result['observe_cpu_ms']:.4f} CPU-ms per send; "
        f"legitimate accounts a rule fires on: {m['legitimate_flagged_by_rules']}"
    )
    table = Table(title="Detection at a false-positive rate (share of legitimate accounts ever acted on)")
    table.add_column("")
    for rate in m["at"]:
        table.add_column(f"FPR {rate}", justify="right")
    outcomes = list(m["at"].values())
    table.add_row("recall, all abuse", *(_pct(o["recall"]) for o in outcomes))
    for t in outcomes[0]["recall_by_type"]:
        table.add_row(f"  recall, {t}", *(_pct(o["recall_by_type"][t]) for o in outcomes))
    for p in outcomes[0]["flagged_by_population"]:
        table.add_row(f"  flagged, {p}", *(_pct(o["flagged_by_population"][p], 2) for o in outcomes))
    table.add_row("acted on before any report", *(_pct(o["before_any_report"]) for o in outcomes))
    table.add_row("acted on at registration", *(_pct(o["at_registration"]) for o in outcomes))
    table.add_row("median messages before action", *(str(o["median_messages_before_action"]) for o in outcomes))
    for t in outcomes[0]["median_messages_before_action_by_type"]:
        table.add_row(f"  {t}", *(str(o["median_messages_before_action_by_type"].get(t, "-")) for o in outcomes))
    table.add_row("score threshold", *(f"{o['threshold']:.4f}" for o in outcomes))
    console.print(table)
    cost = result.get("relay")
    if cost:
        table = Table(title="Relay CPU per message, detector off and on (same load, at the same time)")
        for column in ("", "delivered/s", "CPU-ms/msg", "p50 ms", "p99 ms", "errors"):
            table.add_column(column, justify="right" if column else "left")
        for side in ("off", "on"):
            r = cost[side]
            table.add_row(side, *(str(r[k]) for k in RELAY_KEYS))
        console.print(table)
        console.print(f"added relay CPU per message with the detector on: {cost['added_cpu_ms_per_message']} ms")


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=40_000, help="accounts per run, train and measure (40,000)")
    parser.add_argument("--days", type=int, default=training.DAYS, help=f"simulated days per run ({training.DAYS})")
    parser.add_argument("--seed", type=int, default=1, help="the training run's seed; the measured run's is +1")
    parser.add_argument("--pairs", type=int, default=20, help="relay cost: sender/receiver pairs (default 20)")
    parser.add_argument("--rate", type=float, default=400.0, help="relay cost: messages/s to each relay (400)")
    parser.add_argument("--seconds", type=float, default=15.0, help="relay cost: timed window per relay (15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="relay cost: load before the window (3)")
    parser.add_argument("--no-relay", action="store_true", help="skip the relay cost")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,500 accounts, a short relay load")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.pairs, args.rate, args.seconds, args.warmup = 1_500, 3, 60.0, 2.0, 1.0
    if args.accounts < 100:
        parser.error("--accounts must be at least 100 (about 1 % of them are abusive)")
    if not 1 <= args.days <= 60:
        parser.error("--days must be between 1 and 60")
    if not 1 <= args.pairs <= 4999:
        parser.error("--pairs must be between 1 and 4999")
    return args


def main() -> None:
    args = parse_args()

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    model, fitted = train(args, say)
    result: dict[str, Any] = {
        "command": command(),
        "machine": machine(),
        "settings": {"accounts": args.accounts, "days": args.days, "seed": args.seed, **fitted},
        "detection": measure(args, model, say),
        "observe_cpu_ms": round(observe_cost_ms(sends=20_000 if args.quick else 200_000), 5),
    }
    if not args.no_relay:
        with tempfile.TemporaryDirectory(prefix="cove-bench-safety-") as tmp:
            result["relay"] = relay_cost(args, model, Path(tmp), say)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
