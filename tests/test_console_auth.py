"""Who may use the console: operators added by command, signed in with a password through the login page, with
failed sign-ins limited, a token on every POST, and sessions that end with the operator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from console_world import PASSWORD, add_operator, console_env, csrf_of, sign_in, start_console
from cove.console.passwords import WeakPassword, hash_password, verify_password
from cove.console.throttle import ADDRESS_FAILURES, FAILURES, PERIOD_S, LoginThrottle
from cove.testing import run_cove


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    data_dir = tmp_path / "relay"
    data_dir.mkdir()
    return console_env(database_url, data_dir)


@pytest.fixture
def console(env: dict[str, str], tmp_path: Path) -> Iterator[httpx.Client]:
    add_operator(env)
    process = start_console(env, tmp_path / "console.log")
    with httpx.Client(base_url=process.base, follow_redirects=False, timeout=30) as client:
        yield client
    process.stop()


def test_a_password_matches_only_itself_and_an_unknown_operator_matches_nothing() -> None:
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not verify_password(PASSWORD, None)
    assert not verify_password(PASSWORD, "md5$whatever")
    assert hash_password(PASSWORD) != stored  # salted
    with pytest.raises(WeakPassword):
        hash_password("short")


@given(st.lists(st.sampled_from(["olivia", "oscar"]), max_size=12))
def test_a_name_is_refused_after_its_failures_until_the_period_passes(names: list[str]) -> None:
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for name in names:
        throttle.attempt(name, "10.0.0.1")  # each fails: nobody says succeeded
    for name in ("olivia", "oscar"):
        assert (throttle.attempt(name, "10.0.0.2") is not None) == (names.count(name) >= FAILURES)
    now[0] = PERIOD_S + 1
    assert throttle.attempt("olivia", "10.0.0.1") is None


def test_a_success_clears_the_names_failures() -> None:
    throttle = LoginThrottle(clock=lambda: 0.0)
    for _ in range(FAILURES - 1):
        assert throttle.attempt("olivia", "10.0.0.1") is None
    throttle.succeeded("olivia")
    for _ in range(FAILURES):
        assert throttle.attempt("olivia", "10.0.0.1") is None
    assert throttle.attempt("olivia", "10.0.0.1") is not None


def test_an_address_is_refused_after_its_failures_over_every_name() -> None:
    throttle = LoginThrottle(clock=lambda: 0.0)
    for n in range(ADDRESS_FAILURES):
        assert throttle.attempt(f"name-{n}", "10.0.0.1") is None
    assert throttle.attempt("another", "10.0.0.1") is not None
    assert throttle.attempt("another", "10.0.0.2") is None


def test_the_record_of_failures_is_bounded() -> None:
    throttle = LoginThrottle(clock=lambda: 0.0, max_keys=3)
    for name in ("a", "b", "c", "d"):
        for _ in range(FAILURES):
            throttle.attempt(name, f"address-{name}")
    assert throttle.attempt("a", "address-a") is None  # the oldest went when "d" came
    assert throttle.attempt("d", "address-d") is not None


def test_operator_commands(env: dict[str, str]) -> None:
    add_operator(env)
    again = run_cove(["console", "operator", "add", "olivia", "--password-stdin"], env, input=PASSWORD + "\n")
    assert again.returncode == 1 and "exists already" in again.stderr and "Traceback" not in again.stderr
    weak = run_cove(["console", "operator", "add", "oscar", "--password-stdin"], env, input="short\n")
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    bad = run_cove(["console", "operator", "add", "Bad Name", "--password-stdin"], env, input=PASSWORD + "\n")
    assert bad.returncode == 1 and "operator name" in bad.stderr
    listed = run_cove(["console", "operator", "list"], env)
    assert listed.stdout.startswith("olivia\t") and "last sign-in never" in listed.stdout
    assert run_cove(["console", "operator", "remove", "olivia"], env).returncode == 0
    gone = run_cove(["console", "operator", "remove", "olivia"], env)
    assert gone.returncode == 1 and "no operator is named olivia" in gone.stderr


def test_pages_need_a_session_and_a_wrong_password_gets_none(console: httpx.Client) -> None:
    for path in ("/", "/rollout", "/consent", "/consent/figures"):
        refused = console.get(path)
        assert refused.status_code == 303 and refused.headers["location"] == "/login"
    refresh = console.get("/rollout/figures", headers={"HX-Request": "true"})
    assert refresh.headers["hx-redirect"] == "/login" and refresh.text == ""
    wrong = sign_in(console, password=PASSWORD + "x")
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    unknown = sign_in(console, name="nobody")
    assert unknown.status_code == 401 and "Wrong name or password" in unknown.text
    assert console.get("/").status_code == 303
    signed_in = sign_in(console)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    overview = console.get("/")
    assert overview.status_code == 200 and "Signed in as" in overview.text


def test_sign_ins_are_limited_after_failures_even_with_the_right_password(console: httpx.Client) -> None:
    for _ in range(FAILURES):
        assert sign_in(console, password="not the password at all").status_code == 401
    limited = sign_in(console)
    assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
    assert console.get("/").status_code == 303


def test_a_post_needs_the_session_token(console: httpx.Client) -> None:
    token = csrf_of(console.get("/login").text)
    forged = console.post("/login", data={"csrf": "guessed", "name": "olivia", "password": PASSWORD})
    assert forged.status_code == 403 and 'data-code="csrf_mismatch"' in forged.text
    assert sign_in(console).status_code == 303
    assert token != csrf_of(console.get("/consent").text)  # signing in made a new session and token
    refused = console.post("/consent/verify", data={})
    assert refused.status_code == 403 and 'data-code="csrf_mismatch"' in refused.text
    token = csrf_of(console.get("/consent").text)
    done = console.post("/consent/verify", headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert done.status_code == 200 and "verified" in done.text


def test_signing_out_and_removing_the_operator_end_the_session(console: httpx.Client, env: dict[str, str]) -> None:
    assert sign_in(console).status_code == 303
    token = csrf_of(console.get("/").text)
    assert console.post("/logout", data={"csrf": token}).headers["location"] == "/login"
    assert console.get("/").status_code == 303
    assert sign_in(console).status_code == 303
    assert console.get("/").status_code == 200
    assert run_cove(["console", "operator", "remove", "olivia"], env).returncode == 0
    assert console.get("/").status_code == 303


def test_the_console_will_not_start_without_the_relays_database(tmp_path: Path) -> None:
    env = {"COVE_DATA_DIR": str(tmp_path), "COVE_CONFIG": str(tmp_path / "none.toml"), "COVE_DATABASE_URL": ""}
    refused = run_cove(["console", "serve", "--port", "0"], env)
    assert refused.returncode == 1 and refused.stderr.count("error:") == 1 and "no relay database" in refused.stderr
