"""``cove partner seed | link | suggest``: the parent's population, account linking and friend suggestions.

``register(app)`` adds the three commands to the partner's Typer app. ``link`` and ``suggest`` hash numbers
with the key of the messenger's trust bundle (``--trust``), so they refuse to run without one. ``seed --mirror``
(evaluation only) can make up a key when there is no bundle yet, and says so.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cove.partner import config
from cove.partner.engines import EngineError, EngineName, open_engine
from cove.partner.linking import MIN_LABELLED_PAIRS, LinkingError, LinkReport, link
from cove.partner.operating_point import DEFAULT_TARGET
from cove.partner.population import WorldSpec, generate
from cove.partner.seed import PERSON_FIELDS, add_people, seed_store
from cove.partner.suggestions import HoldoutReport, SuggestReport, evaluate_holdout, suggest
from cove.partner.terminal import STORE, TRUST, console, err, fail, now_ms, open_or_fail, say, trust_or_fail
from cove.sharing import wire


def register(app: typer.Typer) -> None:
    """Add ``seed``, ``link`` and ``suggest`` to ``app``."""
    app.command("seed")(seed_command)
    app.command("link")(link_command)
    app.command("suggest")(suggest_command)


def seed_command(
    users: int = typer.Option(10_000, "--users", min=1, help="Parent-network users to generate"),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same world"),
    mirror: bool = typer.Option(
        False, "--mirror", help="Evaluation only: also write the generated messenger side as if shared, with truth"
    ),
    people: Path = typer.Option(None, "--people", help="JSONL of real people to add as parent users"),
    store: Path = STORE,
    trust: Path = TRUST,
) -> None:
    """Replace the parent's population (users, friendships, contact books, blocks) with a generated one."""
    extra = _read_people(people) if people else []
    key = _mirror_key(trust) if mirror else None
    conn = open_or_fail(store)
    try:
        with _spinner(f"generating {users:,} users"):
            world = add_people(generate(WorldSpec(users=users), seed), extra, seed)
        with _spinner("writing the store"):
            report = seed_store(conn, world, now_ms(), mirror=mirror, phone_key=key)
    finally:
        conn.close()
    say(
        f"seeded {report.users:,} users ({len(extra)} given), {report.friendships:,} friendships, "
        f"{report.contact_uploads:,} contact-book entries, {report.blocks:,} blocks"
    )
    if mirror:
        say(f"mirrored {report.mirrored_subjects:,} messenger accounts ({report.truth_links:,} with a true link)")


def link_command(
    target_precision: float = typer.Option(
        DEFAULT_TARGET, "--target-precision", min=0.5, max=1.0, help="Write the links whose expected precision meets it"
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.5, max=1.0, help="Instead: lowest probability written"
    ),
    engine: EngineName = typer.Option(EngineName.DUCKDB, "--engine", help="Where Splink runs: here, or on Spark"),
    store: Path = STORE,
    trust: Path = TRUST,
) -> None:
    """Link messenger subjects shared for account linking to parent users (Splink), replacing the links."""
    key = trust_or_fail(trust).phone_key()
    conn = open_or_fail(store)
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task(f"starting {engine.value}")
            with open_engine(engine.value) as splink_engine:
                report = link(
                    conn,
                    key,
                    now_ms(),
                    target_precision=target_precision,
                    threshold=threshold,
                    engine=splink_engine,
                    on_phase=lambda p: bar.update(task, description=p),
                )
    except (LinkingError, EngineError) as exc:
        raise fail(str(exc)) from None
    finally:
        conn.close()
    _print_links(report)


def suggest_command(
    k: int = typer.Option(10, "--k", min=1, help="Suggestions per user"),
    hub_cap: int = typer.Option(1000, "--hub-cap", min=2, help="Skip common friends with more friends than this"),
    holdout: bool = typer.Option(False, "--holdout", help="Also hide 10% of friendships and measure P@k and R@k"),
    store: Path = STORE,
    trust: Path = TRUST,
) -> None:
    """Compute every user's top-k friend suggestions, replacing the suggestions."""
    key = trust_or_fail(trust).phone_key()
    conn = open_or_fail(store)
    try:
        with _rows_progress("friends of friends") as on_progress:
            report = suggest(conn, key, k, hub_cap=hub_cap, on_progress=on_progress)
        _print_suggestions(report)
        if holdout:
            with _rows_progress("holdout: friends of friends") as on_progress:
                result = evaluate_holdout(conn, key, k, hub_cap=hub_cap, on_progress=on_progress)
            _print_holdout(result)
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        conn.close()


def _print_links(report: LinkReport) -> None:
    say(
        f"{report.subjects:,} subjects shared for account linking, {report.users:,} parent users, "
        f"compared on {', '.join(report.fields) or 'nothing'}"
    )
    if report.subjects and report.users and not any(report.candidate_pairs.values()):
        say(
            "no subject shares a phone number or a vendor device id with a parent user: nothing to link. "
            "A generated network holds none of the messenger's people: `seed --people FILE` adds them."
        )
    if report.untrained:
        say(
            f"too few pairs are linked by {' or '.join(report.untrained)} alone to learn the other comparison from "
            f"(about {MIN_LABELLED_PAIRS:,} are needed): Splink's default m and an assumed prior were used"
        )
    methods = ", ".join(f"{count:,} by {method}" for method, count in report.by_method.items()) or "none"
    if any(report.candidate_pairs.values()):  # without a scored pair there is no threshold to speak of
        chosen = f"for target precision {report.target_precision}" if report.target_precision else "as given"
        say(
            f"threshold {report.threshold:.4f} ({chosen}): estimated precision {report.estimated_precision:.4f}; "
            f"prior {report.prior or 'none'}"
        )
    say(
        f"linked {report.written:,} at p >= {report.threshold:.4f} ({methods}); "
        f"{report.auto:,} at p >= 0.99 (automatic)"
    )
    rejected = ", ".join(f"{count:,} on {key}" for key, count in report.exact_rejected.items())
    if rejected:
        say(f"exact matches the model did not link: {rejected}")
    if report.quality:
        table = Table(title="Against the generator's ground truth")
        for column in ("links at", "links", "precision", "recall"):
            table.add_column(column, justify="right")
        for q in [*report.quality, *([report.at_threshold] if report.at_threshold else [])]:
            table.add_row(f"p >= {q.threshold:.4g}", f"{q.links:,}", f"{q.precision:.3f}", f"{q.recall:.3f}")
        for name, q in report.baselines.items():
            table.add_row(name, f"{q.links:,}", f"{q.precision:.3f}", f"{q.recall:.3f}")
        console.print(table)
    timings = Table(title="Phases (seconds)")
    for name in report.timings:
        timings.add_column(name, justify="right")
    timings.add_row(*(f"{seconds:.2f}" for seconds in report.timings.values()))
    console.print(timings)


def _print_suggestions(report: SuggestReport) -> None:
    sources = ", ".join(f"{count:,} {source}" for source, count in report.by_source.items())
    say(f"{report.written:,} suggestions for {report.users:,} users ({sources})")
    say(f"{report.via_messenger:,} contact-book suggestions came only from numbers shared for friend suggestions")
    say(f"{report.wedges:,} wedges, {report.hubs_skipped:,} hubs skipped; seconds: " + _seconds(report.timings))


def _print_holdout(result: HoldoutReport) -> None:
    table = Table(title=f"Holdout: {result.hidden_edges:,} friendships hidden, {result.users_evaluated:,} users")
    for column in ("candidates", f"P@{result.k}", f"R@{result.k}", f"hit@{result.k}"):
        table.add_column(column, justify="right")
    table.add_row(
        "contact books + friends of friends",
        f"{result.precision:.3f}",
        f"{result.recall:.3f}",
        f"{result.hit_rate:.3f}",
    )
    table.add_row(
        "friends of friends", f"{result.fof_precision:.3f}", f"{result.fof_recall:.3f}", f"{result.fof_hit_rate:.3f}"
    )
    table.add_row("random non-friends", f"{result.random_precision:.5f}", "", "")
    console.print(table)


def _seconds(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in timings.items())


def _read_people(path: Path) -> list[dict[str, Any]]:
    """People to add, one JSON object a line, with the keys of :data:`cove.partner.seed.PERSON_FIELDS`."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        people = [json.loads(line) for line in lines]
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read people from {path}: {exc}") from None
    for number, person in enumerate(people, 1):
        if not isinstance(person, dict) or not isinstance(person.get("name"), str):
            raise fail(f"{path}:{number}: each line must be an object with a name")
        unknown = set(person) - set(PERSON_FIELDS)
        if unknown:
            raise fail(f"{path}:{number}: unknown fields {sorted(unknown)}; expected {', '.join(PERSON_FIELDS)}")
    return people


def _mirror_key(path: Path | None) -> bytes:
    """The trust bundle's phone key; with no bundle, a new key in a mirror-only bundle written in its place."""
    path = path or config.trust_path()
    if path.exists():
        return trust_or_fail(path).phone_key()
    key = os.urandom(32)
    public = wire.public_key_bytes(Ed25519PrivateKey.generate().public_key())
    bundle = wire.TrustBundle(
        recipient="mirror", messenger_public_key=base64.b64encode(public).decode(), phone_hash_key=key.hex()
    )
    # The phone-hash key is a secret: owner-only, and never over a file that appeared meanwhile. (Not
    # cove.keyfile's writer: the partner imports nothing of the messenger but its wire format.)
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(bundle.model_dump_json().encode())
    err.print(
        f"no trust bundle at {path}: made up a phone-hash key for this mirror and wrote a mirror-only bundle there. "
        "Its messenger key signs nothing, so replace it with `cove share keys` output before ingesting real batches.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return key


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    with err.status(text, spinner="dots"):
        yield


@contextmanager
def _rows_progress(text: str) -> Iterator[Any]:
    """A progress bar over rows; yields the ``on_progress(done, total)`` callback to feed it."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(text, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
