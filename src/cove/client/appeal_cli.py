"""``cove status`` and ``cove appeal``: the safety steps on one's own account, and contesting them.

A throttled, challenged or restricted account appeals with its own token. A banned one cannot log in, so the
relay sends its number a code for the purpose (it never registers), which the person types in here.
"""

from __future__ import annotations

import typer

from cove.client import safety_status
from cove.client.cli import ProfileOption, _client, _existing, _not_registered, _refuse, _registered, _run, console
from cove.client.errors import RelayError

MAX_MESSAGE = 1000  # what the relay keeps of an appeal's words


def register_appeal_commands(app: typer.Typer) -> None:
    @app.command("status")
    @_run
    async def status(profile: str = ProfileOption) -> None:
        """The safety steps in force on your account (throttle, challenge, restrict), why, and your appeal."""
        async with _client(_registered(profile)) as client:
            for line in safety_status.describe(await client.safety_status()):
                console.print(line)

    @app.command("appeal")
    @_run
    async def appeal(
        message: str = typer.Argument(..., help="Why the action is a mistake, in your own words (1000 characters)"),
        code: str = typer.Option(None, "--code", help="A banned number's appeal code; asked for when not given"),
        profile: str = ProfileOption,
    ) -> None:
        """Ask an operator to review a step on your account, or your ban."""
        if not 0 < len(message) <= MAX_MESSAGE:
            _refuse(f"an appeal says why in 1 to {MAX_MESSAGE} characters")
        core = _existing(profile)
        if core is None or core.phone_number is None:
            raise _not_registered(profile, core)
        async with _client(core) as client:
            try:
                filed = await client.appeal(message)
            except RelayError as exc:
                if exc.status != 401:
                    raise
                # Logged out: banned (or re-registered elsewhere, which the relay then says).
                await client.request_appeal_code(core.phone_number)
                code = code or typer.prompt(f"The appeal code sent to {core.phone_number}")
                filed = await client.appeal_banned(core.phone_number, code.strip(), message)
                console.print(
                    f"appeal {filed['id']} filed for {core.phone_number}: an operator will decide; if they lift the "
                    f"ban, register again with `cove register {core.phone_number} --profile {profile}`"
                )
                return
        console.print(f"appeal {filed['id']} filed: an operator will decide; `cove status` shows the answer")
