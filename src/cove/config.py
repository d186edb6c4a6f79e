"""Relay settings: environment variables (prefix ``COVE_``) over an optional TOML file over defaults.

The TOML file is ``cove.toml`` in the working directory, or the path in ``COVE_CONFIG``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# A step of safety's action ladder, and a model score (cove.safety.detector's thresholds).
Step = Literal["throttle", "challenge", "restrict", "ban"]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


def _toml_path() -> Path:
    return Path(os.environ.get("COVE_CONFIG", "cove.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COVE_", extra="forbid")

    data_dir: Path = Field(Path("./var"), description="Where the SQLite database and the server secret live.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; empty means SQLite at DATA_DIR/cove.db. "
        "PostgreSQL: postgresql+asyncpg://user@host:5432/db",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str | None = Field(
        None, description="Keys the verification-code HMAC; generated into DATA_DIR/secret.key if unset."
    )

    code_sender: Literal["console", "webhook"] = "console"
    code_webhook_url: str | None = None
    code_ttl_seconds: int = 600
    code_max_attempts: int = 5
    code_max_sends: int = Field(5, description="Codes per number per source address per window")
    code_send_window_seconds: int = 3600
    code_max_sends_per_source: int = Field(20, description="Codes per source address (IPv6: /64) per window")
    code_max_sends_per_range: int = Field(50, description="Codes per number range per window")
    code_range_digits: int = Field(2, ge=0, le=6, description="A range is the number without this many last digits")
    code_max_sends_overall: int = Field(10_000, description="Codes the relay sends per window in all")
    registration_lock_days: float = Field(7.0, description="A registration lock lapses after this long inactive")
    registration_lock_max_guesses: int = Field(10, description="Wrong PINs before the lock takes no more guesses")
    token_idle_days: float = Field(180.0, description="A device token unused for this long stops working")

    # Registration gate (cove.safety.registration): how much history makes a code request suspicious, and the
    # proof of work it then costs. A key's pressure is its code requests over an hour's budget (or a day's, ten
    # times it), plus its accounts banned since; at 1 the request is challenged. The budgets sit far above
    # ordinary traffic: a carrier's NAT puts thousands behind one address, tests register hundreds from one.
    registration_gate_number_per_hour: int = Field(10, ge=1, description="Code requests to one number an hour")
    registration_gate_range_per_hour: int = Field(
        300, ge=1, description="Code requests to one number range (code_range_digits) an hour"
    )
    registration_gate_source_per_hour: int = Field(
        300, ge=1, description="Code requests from one source address (IPv6: /64) an hour"
    )
    registration_gate_device_per_hour: int = Field(
        20, ge=1, description="Code requests from one device (its vendor id; a model counts 100 times this) an hour"
    )
    registration_gate_banned: int = Field(
        3,
        ge=1,
        description="Accounts registered from one number, range, source or device and banned since, for a "
        "challenge by that alone",
    )
    registration_gate_parent_weight: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Pressure the parent's signed spam signal for a number adds to it (1: a challenge)",
    )
    registration_gate_bits: int = Field(18, ge=1, le=32, description="Proof of work at pressure 1, in zero bits")
    registration_gate_max_bits: int = Field(24, ge=1, le=32, description="Cap: each doubling of pressure adds a bit")
    registration_gate_history_days: int = Field(30, ge=1, description="How long registration history is kept")

    message_retention_days: float = 30.0
    purge_interval_seconds: float = 60.0
    max_message_bytes: int = 96 * 1024
    max_devices_per_message: int = 16
    group_max_members: int = Field(
        1024,
        ge=2,
        le=10_000,
        description="Members a group may have, its creator included (the relay stores each group message once "
        "and queues one small row per member device).",
    )
    max_one_time_keys: int = 50
    max_companion_devices: int = Field(4, ge=0, le=15, description="Devices an account may link besides its phone")
    provisioning_per_source: int = Field(
        10, ge=1, description="Provisioning channels one source address (IPv6: /64) may open per 10 minutes"
    )

    max_attachment_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1,
        le=100 * 1024 * 1024,
        description="Largest attachment ciphertext a device may upload (413 above); 100 MiB at most",
    )
    attachment_upload_hours: float = Field(
        24.0, gt=0, description="An attachment upload not completed within this long is deleted"
    )
    # Forwarded files (cove.attachments): devices a forward adds to a blob's recipients, per account.
    attachment_recipients_bucket: int = Field(
        5000, ge=100, description="Devices an account may add to its forwarded files' recipients at once"
    )
    attachment_recipients_per_hour: float = Field(5000.0, gt=0, description="... and regains per hour")

    discovery_max_numbers: int = 1000
    discovery_bucket_size: int = 5000
    discovery_refill_per_second: float = 1.0

    notice_interval_seconds: float = Field(5.0, description="How often opening rollout waves are checked")
    ledger_checkpoint_seconds: float = Field(60.0, description="How often the ledger's global checkpoint is written")

    # Connection limits: what one client, one address or everyone together may hold open (cove.serving).
    max_connections: int = Field(4000, ge=1, description="Open connections in total; keep it under `ulimit -n`")
    max_connections_per_address: int = Field(1000, ge=1, description="Open connections from one source address")
    max_sockets_per_account: int = Field(
        10, ge=1, description="Open WebSockets of one account: its phone and companions, two each while reconnecting"
    )
    header_timeout_seconds: float = Field(10.0, gt=0, description="Time to send a request's headers")
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="Largest request line and headers (431 above)")
    ws_close_timeout_seconds: float = Field(10.0, gt=0, description="Time a closing socket gets to flush")
    ws_max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest WebSocket frame accepted")
    ws_outbox_frames: int = Field(1024, ge=1, description="Frames waiting for one socket before it is closed")
    ws_outbox_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Bytes waiting for one socket, as above")
    ws_in_flight: int = Field(256, ge=1, description="Sends and acks of one socket not yet committed")
    ws_bad_frames: int = Field(20, ge=1, description="Unreadable frames a socket may send at once")
    ws_bad_frames_per_second: float = Field(1.0, gt=0, description="... and regains per second")

    # A fleet: several relay processes on one PostgreSQL database (docs/scaling.md).
    nats_url: str | None = Field(
        None, description="NATS server for wake-ups and events between relay processes; empty: one process"
    )
    bus_prefix: str = Field(
        "cove", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="First token of every NATS subject (one per fleet)"
    )
    fleet_poll_seconds: float = Field(
        2.0, gt=0, description="How often events from other processes are read from the database"
    )
    queue_rescan_seconds: float = Field(
        30.0, gt=0, description="In a fleet, how often each socket re-reads its queue for a lost wake-up"
    )
    health_interval_seconds: float = Field(
        10.0,
        gt=0,
        description="How often each relay process writes its health figures (connected devices, messages, "
        "delivery latency, queue depth) to relay_health, for `cove relay health` and the operator console",
    )

    # Shared limits (cove.limits.table): a fleet of relays keeps every rate limit in one Redis.
    redis_url: str | None = Field(
        None, description="Redis for fleet-wide limits, e.g. redis://127.0.0.1:6379/0; empty: limits per process"
    )
    redis_prefix: str = Field(
        "cove:", pattern=r"^[A-Za-z0-9:_.-]{0,64}$", description="Prefix of every key the relay writes to Redis"
    )
    redis_timeout_seconds: float = Field(
        0.1, gt=0, le=5, description="A limit check that Redis has not answered by then fails open or closed"
    )

    # Safety actions (cove.safety.actions): the graduated steps throttle < challenge < restrict < ban.
    safety_automatic_actions: bool = Field(
        True, description="Let the detector take steps by itself; false: only operators act (the test harness)"
    )
    safety_throttle_minutes: float = Field(60.0, gt=0, description="How long an automatic or operator throttle runs")
    safety_throttle_burst: int = Field(5, ge=1, description="Sends a throttled account may make at once ...")
    safety_throttle_per_hour: float = Field(30.0, gt=0, description="... and regains per hour")
    safety_restrict_hours: float = Field(24.0, gt=0, description="How long a restriction runs unless reviewed sooner")
    safety_challenge_bits: int = Field(
        20, ge=1, le=32, description="Leading zero bits the proof of work of a challenged account must find"
    )
    safety_actions_cached: int = Field(
        100_000, ge=1, description="Accounts whose steps in force one relay process keeps in memory (least recent go)"
    )

    # Defences (cove.safety.defences): blocks, acceptances of message requests, reports.
    safety_contacts_cache_pairs: int = Field(
        200_000, ge=1000, description="Pairs of accounts whose blocks and acceptances a relay process keeps in memory"
    )
    safety_contacts_ttl_seconds: float = Field(
        60.0, gt=0, le=3600, description="How long such a pair is trusted before it is read from the database again"
    )
    safety_max_blocks: int = Field(10_000, ge=1, description="Accounts one account may block (409 too_many_blocks)")
    safety_report_text_days: float = Field(
        90.0,
        gt=0,
        le=3650,
        description="How long the messages a reporter attached are kept for review; the report itself stays",
    )
    # Forwarding (cove.safety.forwarding): the relay's limits on forwarded sends, beside the per-action 5 / 1 chats.
    forward_batch_window_seconds: float = Field(
        300.0, gt=0, le=86_400, description="How long the chats of one forward action (its batch) are counted"
    )
    forward_bucket_size: int = Field(
        50, ge=5, description="Forwarded chats an account may reach at once (a frequently forwarded one counts 5)"
    )
    forward_refill_per_hour: float = Field(100.0, gt=0, description="... and regains per hour")

    # Detector (cove.safety.detector): per-account counters in memory, scored in batches off the send path.
    safety_detector: bool = Field(True, description="Count every send and score accounts; false: neither")
    safety_detector_accounts: int = Field(
        50_000, ge=1, description="Accounts whose counters are kept (about 2 KB each); the idlest is forgotten first"
    )
    safety_detector_peers: int = Field(
        128, ge=0, description="Peers remembered per account to tell replies from cold contacts (about 100 B each)"
    )
    safety_score_interval_ms: int = Field(1000, ge=10, description="How often accounts that acted are scored")
    safety_score_batch: int = Field(1024, ge=1, description="Accounts scored at most in one batch")
    safety_model_path: Path | None = Field(
        None, description="A LightGBM text model to score with instead of the one shipped with Cove"
    )
    # The shipped model's scores at false-positive rates of 1e-3 (0.74) and 1e-4 (0.90) on simulated accounts it
    # never saw (`cove safety train`, 50,000 accounts, seed 7). The model never bans alone: a ban takes a rule
    # or a person.
    safety_thresholds: dict[Step, Score] = Field(
        {"throttle": 0.74, "challenge": 0.9, "restrict": 0.97},
        description="Model score from which each step is taken (JSON; steps throttle, challenge, restrict, ban)",
    )
    safety_business_thresholds: dict[Step, Score] = Field(
        {"throttle": 0.9, "challenge": 0.97},
        description="The same for business accounts, whose users opted in to their messages",
    )

    log_level: str = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cove.db').resolve()}"

    def resolved_secret_key(self) -> bytes:
        """The HMAC key for verification codes: configured, or created once and kept in the data directory."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip().encode()


def _shown(default: object) -> str:
    return f"./{default}" if isinstance(default, Path) and not default.is_absolute() else str(default)


def settings_help() -> str:
    """Every setting as ``COVE_NAME=default``, for ``cove serve --help``: read from :class:`Settings`, never stale."""
    names = "  ".join(
        f"COVE_{name.upper()}" + ("" if field.default is None else f"={_shown(field.default)}")
        for name, field in Settings.model_fields.items()
    )
    return (
        "Settings: environment variables COVE_*, then the same keys in lower case in cove.toml in the working "
        f"directory (or the file COVE_CONFIG names), then these defaults: {names}. "
        "The README's Settings table says what each one does."
    )
