"""A privacy policy as code: the model, and loading it from TOML with precise errors.

A policy declares who receives data (recipients and their role), for what (purposes with a legal basis,
default, optional choice window, data categories, recipients) and to whom the new notice goes when
(rollout waves). Everything else (the decision, the SQL predicate, the linter, the notice a user sees)
is derived from this one declaration, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cove.consent.categories import DataCategory

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class RecipientRole(StrEnum):
    PROCESSOR = "processor"
    JOINT_CONTROLLER = "joint_controller"
    INDEPENDENT_CONTROLLER = "independent_controller"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"


class Use(StrEnum):
    """What a purpose does with the data; the linter's rules key off it."""

    ADVERTISING = "advertising"
    FRIEND_SUGGESTIONS = "friend_suggestions"
    ACCOUNT_LINKING = "account_linking"
    SAFETY = "safety"
    ANALYTICS = "analytics"
    SERVICE = "service"


class Choice(StrEnum):
    IN = "in"
    OUT = "out"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipient(_Strict):
    id: Identifier
    name: str = Field(min_length=1)
    role: RecipientRole | None = None
    contract_id: str | None = None


class Purpose(_Strict):
    id: Identifier
    title: str = Field(min_length=1)
    description: str = Field(min_length=1, description="Plain language: what happens and why")
    use: Use
    legal_basis: LegalBasis | None = None
    default: Choice = Choice.OUT
    window_days: int | None = Field(None, ge=1, description="Choices may change only this long after accepting")
    data_categories: list[DataCategory] = Field(min_length=1)
    recipients: list[Identifier] = Field(min_length=1)
    objectable: bool = False
    closed_to_minors: bool = True
    legitimate_interest: str | None = Field(None, description="The interest relied on (legitimate interest only)")
    balancing_test: str | None = Field(None, description="Where the balancing test is kept (legitimate interest)")
    retention_days: int | None = Field(None, ge=1)
    pseudonymised: bool = Field(False, description="Identifiers leave only as keyed hashes or pseudonyms")

    @property
    def optional(self) -> bool:
        """A purpose the user may refuse: consent, or an objectable legitimate interest."""
        return self.legal_basis == LegalBasis.CONSENT or (
            self.legal_basis == LegalBasis.LEGITIMATE_INTEREST and self.objectable
        )


class Wave(_Strict):
    name: str = Field(min_length=1)
    start: AwareDatetime
    percent: int = Field(100, ge=1, le=100, description="Accounts whose hash bucket (0-99) is below this")
    country_codes: list[int] = Field(default_factory=list, description="Calling codes (1, 44, 49); empty: all")


class Rollout(_Strict):
    waves: list[Wave] = Field(min_length=1)

    @field_validator("waves")
    @classmethod
    def _ordered(cls, waves: list[Wave]) -> list[Wave]:
        starts = [w.start for w in waves]
        if starts != sorted(starts):
            raise ValueError("waves must be listed in order of their start")
        return waves


class Policy(_Strict):
    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,40}$")
    effective: AwareDatetime
    title: str = Field(min_length=1)
    summary: str = Field(min_length=1, description="The first layer of the notice (Markdown)")
    text: str = Field(min_length=1, description="The full policy (Markdown)")
    recipients: list[Recipient] = Field(min_length=1)
    purposes: list[Purpose] = Field(min_length=1)
    rollout: Rollout

    @model_validator(mode="after")
    def _references(self) -> Policy:
        recipient_ids = [r.id for r in self.recipients]
        if len(set(recipient_ids)) != len(recipient_ids):
            raise ValueError("recipient ids must be unique")
        purpose_ids = [p.id for p in self.purposes]
        if len(set(purpose_ids)) != len(purpose_ids):
            raise ValueError("purpose ids must be unique")
        for i, purpose in enumerate(self.purposes):
            for r in purpose.recipients:
                if r not in recipient_ids:
                    raise ValueError(f"purposes.{i}.recipients: unknown recipient {r!r}")
        return self

    def purpose(self, purpose_id: str) -> Purpose:
        for p in self.purposes:
            if p.id == purpose_id:
                return p
        raise KeyError(purpose_id)

    def recipient(self, recipient_id: str) -> Recipient:
        for r in self.recipients:
            if r.id == recipient_id:
                return r
        raise KeyError(recipient_id)

    def text_hash(self) -> str:
        """What a user was shown: summary, purposes and full text, hashed for the served log and receipts."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class PolicyError(Exception):
    """A policy file that cannot be used; ``problems`` are ``(path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("; ".join(f"{source}: {path}: {message}" for path, message in problems))


def parse_policy(data: dict, source: str = "<policy>") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(top level)"
            message = err["msg"].removeprefix("Value error, ")
            # Cross-references are checked on the whole policy; their message starts with the real path.
            where, _, rest = message.partition(": ")
            if path == "(top level)" and rest and " " not in where:
                path, message = where, rest
            problems.append((path, message))
        raise PolicyError(source, problems) from None


def load_policy(path: Path | str) -> Policy:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PolicyError(str(path), [("(file)", "no such file")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(str(path), [("(syntax)", str(exc))]) from None
    return parse_policy(data, str(path))
