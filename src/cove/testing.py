"""Run a real relay locally: a ``cove serve`` subprocess and a stand-in SMS gateway for its codes.

Used by the test suite, ``make demo`` and the benchmarks, so they all exercise the relay exactly as
deployed: a separate process, real HTTP and WebSocket, codes through the webhook sender.

The test suite starts hundreds of relays; importing Cove's dependencies was most of each start (2 s of CPU,
far more on a loaded machine). With ``preloaded=True`` the relay is forked from a server process that has
imported Cove once, then runs the same ``cove serve`` command with its own environment; :func:`run_cove` does the same
for the other ``cove`` commands the tests run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CodeInbox:
    """Plays the SMS gateway: receives the relay's code webhook and hands codes to tests."""

    def __init__(self) -> None:
        self.codes: dict[str, list[str]] = {}
        self.fail = False
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if inbox.fail:
                    self.send_response(503)
                else:
                    inbox.codes.setdefault(body["phone_number"], []).append(body["code"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/sms"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def latest(self, phone_number: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.codes.get(phone_number):
                return self.codes[phone_number][-1]
            time.sleep(0.02)
        raise AssertionError(f"no code was sent to {phone_number}")

    async def code_for(self, phone_number: str) -> str:
        """The latest code for the number, waited for without blocking the event loop."""
        async with asyncio.timeout(10):
            while not self.codes.get(phone_number):  # noqa: ASYNC110 - the webhook lands on another thread
                await asyncio.sleep(0.02)
        return self.codes[phone_number][-1]

    def close(self) -> None:
        self._server.shutdown()


# Tests, benchmarks and the demo register many numbers of one range from 127.0.0.1, which the production
# limits on code requests per source, per range and overall would refuse; a caller's env may lower them again.
HARNESS_CODE_LIMITS = {
    "COVE_CODE_MAX_SENDS_PER_SOURCE": "1000000",
    "COVE_CODE_MAX_SENDS_PER_RANGE": "1000000",
    "COVE_CODE_MAX_SENDS_OVERALL": "1000000",
}

# Tests burst hundreds of messages from accounts minutes old, which is what the detector's automatic actions
# (cove.safety.actions) throttle, challenge or restrict: a test of something else would fail by chance. They are
# off in the harness unless a test's env turns them on; operators' steps and users' own defences stay on.
HARNESS_SAFETY = {"COVE_SAFETY_AUTOMATIC_ACTIONS": "false"}


# What a forked `cove` command starts with already imported: the relay and the libraries behind every command, but
# not the command modules, which read the terminal (rich consoles) and the environment (option defaults) on import.
_PRELOAD = [
    "cove.app",
    "cove.client.core",
    "cove.partner.ingest",
    "duckdb",
    "scipy.sparse",
    "nats",
    "typer",
    "rich.console",
]


def _run_cove(argv: list[str], env: dict[str, str], cwd: str | None, out: str, err: str, stdin: str | None) -> None:
    """The forked child: ``cove ARGV`` with exactly ``env`` as its environment and its output in files."""
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    if stdin is not None:
        sys.stdin = open(stdin, encoding="utf-8")  # noqa: SIM115 - the child's stdin until it exits
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    from cove.cli import app

    app(argv, prog_name="cove")


class PreloadedCove:
    """``cove ARGV`` forked from a process that has already imported Cove, with the parts of ``Popen`` used here.

    The fork server is a fresh interpreter (not a fork of the caller), so the child inherits imported modules
    and nothing else; Cove reads its settings when it runs, not when it is imported, so ``env`` applies in full.
    """

    _context = multiprocessing.get_context("forkserver")

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        out: Path,
        err: Path | None = None,
        *,
        stdin: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        # Read when the server first starts. The caller's main module too, which each child would import again.
        self._context.set_forkserver_preload(["__main__", *_PRELOAD])
        paths = (str(out), str(err or out), None if stdin is None else str(stdin))
        # Daemonic, so that a child left running is killed when the caller exits rather than awaited forever.
        self._process = self._context.Process(
            target=_run_cove, args=(argv, env, None if cwd is None else str(cwd), *paths), daemon=True
        )
        self._process.start()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(["cove"], timeout or 0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


def run_cove(
    args: list[str], env: dict[str, str], *, input: str | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(["cove", *args], env=env, input=input, capture_output=True, text=True)``, forked from a
    process that has imported Cove already (:class:`PreloadedCove`): the same command without the import."""
    with tempfile.TemporaryDirectory(prefix="cove-run-") as folder:
        out, err, stdin = Path(folder, "stdout"), Path(folder, "stderr"), Path(folder, "stdin")
        if input is not None:
            stdin.write_text(input, encoding="utf-8")
        process = PreloadedCove(args, env, out, err, stdin=stdin if input is not None else None, cwd=cwd)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise subprocess.TimeoutExpired(["cove", *args], timeout, out.read_text(), err.read_text()) from None
        return subprocess.CompletedProcess(["cove", *args], code, out.read_text(), err.read_text())


class RelayProcess:
    """``cove serve`` in a subprocess; restartable on the same database.

    ``preloaded`` forks it from a process that has imported Cove already (see :class:`PreloadedCove`): the
    same command, started in a fraction of the time. Benchmarks keep the default, a fresh interpreter.
    """

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        code_url: str,
        extra_env: dict[str, str],
        *,
        preloaded: bool = False,
        workers: int = 1,
    ) -> None:
        self.database_url = database_url
        self.workers = workers
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "relay.log"
        self.env = {
            **os.environ,
            "COVE_DATABASE_URL": database_url,
            "COVE_DATA_DIR": str(data_dir),
            "COVE_CODE_SENDER": "webhook",
            "COVE_CODE_WEBHOOK_URL": code_url,
            "COVE_CONFIG": str(data_dir / "none.toml"),
            **HARNESS_CODE_LIMITS,
            **HARNESS_SAFETY,
            **extra_env,
        }
        self.preloaded = preloaded
        self._proc: subprocess.Popen[bytes] | PreloadedCove | None = None

    def start(self, timeout: float = 30.0) -> None:
        argv = ["serve", "--port", str(self.port)] + (["--workers", str(self.workers)] if self.workers > 1 else [])
        if self.preloaded:
            self._proc = PreloadedCove(argv, self.env, self.log_path)
        else:
            log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
            self._proc = subprocess.Popen([sys.executable, "-m", "cove", *argv], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"relay exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        self.kill()  # or it outlives the test, holding its port and CPU
        raise RuntimeError(f"relay did not start in {timeout:g} s")

    @property
    def started(self) -> bool:
        return self._proc is not None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    async def wait_for_exit(self) -> int:
        assert self._proc is not None
        while self._proc.poll() is None:  # noqa: ASYNC110 - a child process has no awaitable exit here
            await asyncio.sleep(0.2)
        return self._proc.returncode

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a power cut, a crash or the OOM killer would: no shutdown, nothing flushed."""
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class LocalServer:
    """A server of the test's own on a free loopback port (NATS, Redis), to stop and start again on that port
    under running relays, while the machine's shared one serves the other tests."""

    def __init__(self, folder: Path, binary: str, args: list[str], scheme: str) -> None:
        """``args``: the command line after the binary, with ``{port}`` where the port goes."""
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.binary = binary
        self._argv = [a.format(port=self.port) for a in args]
        self._log = folder / f"{binary}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = open(self._log, "ab")  # noqa: SIM115 - owned by the child process
        self._proc = subprocess.Popen([shutil.which(self.binary) or self.binary, *self._argv], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.025)
        raise RuntimeError(f"{self.binary} did not start: {self._log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def nats_server(folder: Path) -> LocalServer:
    """Core NATS, no JetStream: what the relays' wake-ups and events use."""
    return LocalServer(folder, "nats-server", ["-a", "127.0.0.1", "-p", "{port}"], "nats")


def redis_server(folder: Path) -> LocalServer:
    """Redis keeping nothing on disk, as CI runs it: a restart starts every limit afresh."""
    args = ["--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    return LocalServer(folder, "redis-server", args, "redis")


def policy_opening_now(path: Path):  # noqa: ANN201 - a cove.consent.policy.Policy
    """A policy file with its rollout opening now for everyone, so tests and benchmarks need not wait."""
    from datetime import UTC, datetime, timedelta

    from cove.consent.policy import load_policy

    policy = load_policy(path)
    now = datetime.now(UTC)
    waves = [w.model_copy(update={"start": now - timedelta(seconds=1)}) for w in policy.rollout.waves]
    return policy.model_copy(
        update={"effective": now - timedelta(days=1), "rollout": policy.rollout.model_copy(update={"waves": waves})}
    )
