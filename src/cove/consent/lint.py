"""The policy linter: where a policy breaks the requirements R1-R19 (listed, with their sources, in docs/privacy.md).

``lint(policy, profile)`` is pure. It reads a loaded :class:`~cove.consent.policy.Policy` and returns findings,
each carrying the rule id, a severity, the law or finding it answers, a message and ``where``: the path of the
offending value in the policy file (``purposes.0.window_days``, ``recipients.0.role``, ``summary``).

Every check is one small function in the ``RULES`` registry, registered with ``@rule("Rn")``; its docstring states
the requirement it enforces. Checks yield ``Issue(where, message)``; ``lint`` turns those into findings for a
profile:

- ``eu``: the requirements are GDPR law, so every finding is an error;
- ``uk``: the same, citing UK GDPR and the ICO;
- ``us``: there is no general consent law to break, so findings are warnings, citing the FTC's 2014 letter and
  FTC Act §5. Only a check marked ``us_error`` stays an error: one where the policy contradicts itself (a
  "processor" that uses data for its own ads), which is deception under §5 whatever the consent regime.

Requirements about running systems rather than declarations (R5 fresh opt-in for old data, R6 the consent record,
R8 and R15 the generated tables, R10 non-users, R11 access, R12 propagation) are not checked here: the data
catalogue, the consent ledger and the sharing gateway enforce them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from cove.consent.categories import ACCOUNT_INFORMATION, DataCategory
from cove.consent.policy import Choice, LegalBasis, Policy, Purpose, RecipientRole, Use


class Profile(StrEnum):
    EU = "eu"
    UK = "uk"
    US = "us"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    law: str
    message: str
    where: str

    def to_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": str(self.severity),
            "where": self.where,
            "message": self.message,
            "law": self.law,
        }


class Issue(NamedTuple):
    """What a check yields: the path in the policy file and what is wrong there."""

    where: str
    message: str


@dataclass(frozen=True)
class Law:
    """What a requirement rests on in each profile, and the 2016 failing (or regulator's finding) it answers."""

    eu: str
    uk: str
    us: str
    answers: str

    def cite(self, profile: Profile) -> str:
        return f"{getattr(self, profile.value)}; {self.answers}"


LAWS: dict[str, Law] = {
    "R1": Law(
        eu="GDPR Art. 4(11), 7(2), 25(2); CJEU Planet49 (C-673/17)",
        uk="UK GDPR Art. 4(11), 7(2), 25(2); ICO consent guidance",
        us="FTC letter of 10 Apr 2014 (affirmative consent)",
        answers="pre-ticked toggle bundled with the terms (2016)",
    ),
    "R2": Law(
        eu="GDPR Art. 7(4); EDPB Guidelines 05/2020",
        uk="UK GDPR Art. 7(4); ICO consent guidance",
        us="FTC Act §5 (unfairness)",
        answers="AGCM 2017, CNIL 2017: refusing meant leaving the app",
    ),
    "R3": Law(
        eu="GDPR Art. 6(1), 13(1)(c)-(d), 21",
        uk="UK GDPR Art. 6(1), 13(1)(c)-(d); ICO undertaking 2018 (no lawful basis)",
        us="FTC Act §5 (deception)",
        answers="CNIL 2017, DPC 2021: no legal basis per purpose",
    ),
    "R4": Law(
        eu="GDPR Art. 7(3)",
        uk="UK GDPR Art. 7(3)",
        us="FTC letter of 10 Apr 2014 (opt-out must stay available)",
        answers="30-day window (2016)",
    ),
    "R7": Law(
        eu="GDPR Art. 12(1), 13",
        uk="UK GDPR Art. 12(1), 13; ICO undertaking 2018 (fair-processing information)",
        us="FTC Act §5 (material facts behind a link)",
        answers="'Read more' burial (2016); DPC 2021 'piecemeal'",
    ),
    "R9": Law(
        eu="GDPR Art. 26, 28",
        uk="UK GDPR Art. 26, 28; ICO undertaking 2018 (processor carve-out)",
        us="FTC Act §5 (deception)",
        answers="'Facebook family of companies' with no role (2016); EDPB Urgent Binding Decision 1/2021",
    ),
    "R13": Law(
        eu="GDPR Art. 21",
        uk="UK GDPR Art. 21",
        us="FTC letter of 10 Apr 2014 (opt-out of changes)",
        answers="BI analytics bundled with security (VG Hamburg 2017)",
    ),
    "R14": Law(
        eu="GDPR Art. 5(1)(c), 25",
        uk="UK GDPR Art. 5(1)(c), 25",
        us="FTC Act §5 (unfairness)",
        answers="'spam and abuse' sent the full account information (2016)",
    ),
    "R16": Law(
        eu="GDPR Art. 5(1)(a), 6; EU Merger Regulation (Commission fine, 18 May 2017)",
        uk="UK GDPR Art. 5(1)(a), 6",
        us="FTC Act §5 (deception); FTC letter of 10 Apr 2014",
        answers="undisclosed account matching (EUR 110M, 2017)",
    ),
    "R17": Law(
        eu="GDPR Art. 7, 12, 13(3)",
        uk="UK GDPR Art. 7, 13(3)",
        us="FTC letter of 10 Apr 2014 (affirmative consent to material changes)",
        answers="opt-out rollout with a deadline (2016, 2021)",
    ),
    "R18": Law(
        eu="GDPR Art. 8, recital 38",
        uk="UK GDPR Art. 8; ICO Age Appropriate Design Code",
        us="CCPA §1798.120(c) (opt-in under 16)",
        answers="13+ user base (VG Hamburg 2017)",
    ),
    "R19": Law(
        eu="GDPR Art. 5(1)(e), 13(2)(a)",
        uk="UK GDPR Art. 5(1)(e), 13(2)(a)",
        us="FTC Act §5 (unfairness)",
        answers="no limit on the recipient's use (2016)",
    ),
}

Check = Callable[[Policy], Iterable[Issue]]


@dataclass(frozen=True)
class Rule:
    id: str
    check: Check
    us_error: bool = False

    @property
    def name(self) -> str:
        return self.check.__name__

    @property
    def doc(self) -> str:
        return (self.check.__doc__ or "").strip().splitlines()[0]


RULES: list[Rule] = []


def rule(rule_id: str, *, us_error: bool = False) -> Callable[[Check], Check]:
    """Register a check for requirement ``rule_id`` (which must have an entry in ``LAWS``)."""
    if rule_id not in LAWS:
        raise ValueError(f"no law recorded for {rule_id}")

    def register(check: Check) -> Check:
        RULES.append(Rule(rule_id, check, us_error))
        return check

    return register


def lint(policy: Policy, profile: str | Profile = Profile.EU) -> list[Finding]:
    """Every finding of every registered check, in registry order; ``profile`` is ``eu``, ``uk`` or ``us``."""
    profile = Profile(profile)
    findings = []
    for r in RULES:
        error = profile in (Profile.EU, Profile.UK) or r.us_error
        severity = Severity.ERROR if error else Severity.WARNING
        law = LAWS[r.id].cite(profile)
        findings.extend(Finding(r.id, severity, law, issue.message, issue.where) for issue in r.check(policy))
    return findings


# Uses a user must be able to refuse: none of them is needed to deliver messages or keep the service safe.
NON_ESSENTIAL = frozenset({Use.ADVERTISING, Use.FRIEND_SUGGESTIONS, Use.ACCOUNT_LINKING, Use.ANALYTICS})
# Uses that serve the recipient's own ends: they make it a controller, and they are profiling (R9, R18).
OWN_PURPOSES = frozenset({Use.ADVERTISING, Use.FRIEND_SUGGESTIONS, Use.ACCOUNT_LINKING})
# Uses for which only consent will do (TCF v2.2 purposes 3-6; EDPB Binding Decision 3/2022 on contract).
CONSENT_ONLY = frozenset({Use.ADVERTISING, Use.FRIEND_SUGGESTIONS})
# All that spam and abuse protection may send: verdicts, and a pseudonym of the phone number to act on them.
SAFETY_SIGNALS = frozenset({DataCategory.SAFETY_VERDICTS, DataCategory.PHONE_NUMBER})
# Identifiers that let a controller match an account to one of its own.
LINKING_KEYS = frozenset({DataCategory.PHONE_NUMBER, DataCategory.VENDOR_DEVICE_ID})
# Wording that makes using the app depend on accepting the notice.
DETRIMENT_PHRASES = (
    "to continue using",
    "to keep using",
    "limited functionality",
    "lose functionality",
    "lose access",
    "stop using",
)


def _name(p: Purpose) -> str:
    return f"'{p.title}' ({p.id})"


def _use(p: Purpose) -> str:
    return p.use.replace("_", " ")


def _narrow_safety(p: Purpose) -> bool:
    """A safety purpose sending only pseudonymous signals: what it strictly needs (R13, R14)."""
    return p.use == Use.SAFETY and set(p.data_categories) <= SAFETY_SIGNALS and p.pseudonymised


def _separate_opt_in(p: Purpose) -> bool:
    """Runs only for users who chose it, or for whom it is a legitimate interest they can object to."""
    if p.legal_basis == LegalBasis.CONSENT:
        return p.default == Choice.OUT
    return p.legal_basis == LegalBasis.LEGITIMATE_INTEREST and p.objectable


# R1: off by default


@rule("R1")
def r1_off_by_default(policy: Policy) -> Iterator[Issue]:
    """R1: every consent purpose, and every non-essential purpose without an objectable basis, starts off."""
    for i, p in enumerate(policy.purposes):
        if p.default != Choice.IN:
            continue
        if p.legal_basis == LegalBasis.CONSENT:
            yield Issue(
                f"purposes.{i}.default",
                f"consent purpose {_name(p)} starts on: a pre-ticked choice is no consent; it must start off and be "
                "switched on by a separate affirmative act",
            )
        elif p.use in NON_ESSENTIAL and not (p.legal_basis == LegalBasis.LEGITIMATE_INTEREST and p.objectable):
            yield Issue(
                f"purposes.{i}.default",
                f"non-essential purpose {_name(p)} is on for everyone who accepts the terms, with no choice of its "
                "own; it must start off",
            )


# R2: no detriment


@rule("R2")
def r2_no_detriment(policy: Policy) -> Iterator[Issue]:
    """R2: the notice must not make using the app depend on accepting purposes that are not a separate opt-in."""
    bundled = [p for p in policy.purposes if p.use in NON_ESSENTIAL and not _separate_opt_in(p)]
    if not bundled:
        return
    for field in ("summary", "text"):
        lowered = getattr(policy, field).lower()
        phrase = next((ph for ph in DETRIMENT_PHRASES if ph in lowered), None)
        if phrase:
            titles = ", ".join(_name(p) for p in bundled)
            yield Issue(
                field,
                f"the notice ties using the app to accepting it ('{phrase}') while it also switches on {titles}: "
                "refusing an optional purpose must cost nothing",
            )


# R3: one declared legal basis per flow


@rule("R3")
def r3_basis_declared(policy: Policy) -> Iterator[Issue]:
    """R3: each purpose (and so each of its recipient flows) declares its legal basis."""
    for i, p in enumerate(policy.purposes):
        if p.legal_basis is None:
            yield Issue(f"purposes.{i}.legal_basis", f"{_name(p)} declares no legal basis")


@rule("R3")
def r3_basis_fits_use(policy: Policy) -> Iterator[Issue]:
    """R3: ads and friend suggestions need consent; contract covers only the service itself and its safety."""
    for i, p in enumerate(policy.purposes):
        if p.legal_basis is None or p.legal_basis == LegalBasis.CONSENT:
            continue
        if p.use in CONSENT_ONLY:
            yield Issue(
                f"purposes.{i}.legal_basis",
                f"{_name(p)} is profiling for {_use(p)} and needs consent, not {p.legal_basis}",
            )
        elif p.legal_basis == LegalBasis.CONTRACT and p.use not in (Use.SERVICE, Use.SAFETY):
            yield Issue(
                f"purposes.{i}.legal_basis",
                f"{_name(p)} ({_use(p)}) is not necessary to deliver messages, so the terms of service cannot be its "
                "basis",
            )


@rule("R3")
def r3_interest_disclosed(policy: Policy) -> Iterator[Issue]:
    """R3: a legitimate-interest purpose discloses the interest and keeps a balancing test."""
    for i, p in enumerate(policy.purposes):
        if p.legal_basis != LegalBasis.LEGITIMATE_INTEREST:
            continue
        if not p.legitimate_interest:
            yield Issue(f"purposes.{i}.legitimate_interest", f"{_name(p)} relies on an interest it does not state")
        if not p.balancing_test:
            yield Issue(f"purposes.{i}.balancing_test", f"{_name(p)} has no recorded balancing test")


@rule("R3")
def r3_no_fallback(policy: Policy) -> Iterator[Issue]:
    """R3: a purpose on another basis carries no legitimate-interest text to fall back on later."""
    for i, p in enumerate(policy.purposes):
        if p.legal_basis in (None, LegalBasis.LEGITIMATE_INTEREST):
            continue
        for field in ("legitimate_interest", "balancing_test"):
            if getattr(p, field):
                yield Issue(
                    f"purposes.{i}.{field}",
                    f"{_name(p)} is based on {p.legal_basis} but also states a legitimate interest: one basis per "
                    "flow, and a consent flow cannot be re-labelled later",
                )


# R4: withdrawal at any time


@rule("R4")
def r4_no_window(policy: Policy) -> Iterator[Issue]:
    """R4: a choice can be changed at any time; no purpose has a window after which it is fixed."""
    for i, p in enumerate(policy.purposes):
        if p.window_days is not None:
            yield Issue(
                f"purposes.{i}.window_days",
                f"{_name(p)} can be changed only for {p.window_days} days after accepting; withdrawal must be "
                "possible at any time",
            )


# R7: a complete first layer


@rule("R7")
def r7_first_layer_complete(policy: Policy) -> Iterator[Issue]:
    """R7: the summary (first layer) names every purpose, every recipient and every recipient's role."""
    summary = policy.summary.lower()
    for i, p in enumerate(policy.purposes):
        if p.title.lower() not in summary:
            yield Issue("summary", f"the first layer does not name purpose {_name(p)} (purposes.{i})")
    for i, r in enumerate(policy.recipients):
        if r.name.lower() not in summary:
            yield Issue("summary", f"the first layer does not name recipient '{r.name}' (recipients.{i})")
        if r.role is not None and r.role.replace("_", " ") not in summary:
            yield Issue(
                "summary",
                f"the first layer does not say that '{r.name}' acts as {r.role.replace('_', ' ')} (recipients.{i})",
            )


# R9: typed recipients


@rule("R9")
def r9_role_declared(policy: Policy) -> Iterator[Issue]:
    """R9: every recipient is typed processor, joint controller or independent controller."""
    for i, r in enumerate(policy.recipients):
        if r.role is None:
            yield Issue(
                f"recipients.{i}.role",
                f"'{r.name}' has no role: say whether it is a processor, joint controller or independent controller",
            )


@rule("R9")
def r9_contract_recorded(policy: Policy) -> Iterator[Issue]:
    """R9: a processor works under a contract (Art. 28), joint controllers under an arrangement (Art. 26)."""
    for i, r in enumerate(policy.recipients):
        if r.role == RecipientRole.PROCESSOR and not r.contract_id:
            yield Issue(f"recipients.{i}.contract_id", f"processor '{r.name}' has no processing contract id")
        elif r.role == RecipientRole.JOINT_CONTROLLER and not r.contract_id:
            yield Issue(f"recipients.{i}.contract_id", f"joint controller '{r.name}' has no arrangement id")


@rule("R9", us_error=True)
def r9_processor_own_purposes(policy: Policy) -> Iterator[Issue]:
    """R9: a processor is never sent data for its own purposes (ads, suggestions, linking make it a controller)."""
    for i, p in enumerate(policy.purposes):
        if p.use not in OWN_PURPOSES:
            continue
        for j, rid in enumerate(p.recipients):
            r = policy.recipient(rid)
            if r.role == RecipientRole.PROCESSOR:
                yield Issue(
                    f"purposes.{i}.recipients.{j}",
                    f"'{r.name}' is declared a processor but receives {_name(p)} for its own {_use(p)}: that makes it "
                    "a controller",
                )


# R13: objection


@rule("R13")
def r13_objection(policy: Policy) -> Iterator[Issue]:
    """R13: analytics, profiling and safety beyond what is strictly necessary can be refused or objected to."""
    for i, p in enumerate(policy.purposes):
        if p.legal_basis == LegalBasis.CONSENT or p.objectable:
            continue
        if p.use in NON_ESSENTIAL:
            yield Issue(
                f"purposes.{i}.objectable",
                f"{_name(p)} cannot be refused or objected to, yet {_use(p)} is not essential",
            )
        elif p.use == Use.SAFETY and not _narrow_safety(p):
            yield Issue(
                f"purposes.{i}.objectable",
                f"{_name(p)} sends more than strictly necessary for safety and cannot be objected to",
            )


# R14: minimised safety sharing


@rule("R14")
def r14_safety_minimised(policy: Policy) -> Iterator[Issue]:
    """R14: safety sharing is limited to pseudonymous signals (safety verdicts and a keyed hash of the number)."""
    for i, p in enumerate(policy.purposes):
        if p.use != Use.SAFETY:
            continue
        extra = [c for c in p.data_categories if c not in SAFETY_SIGNALS]
        if extra:
            what = "the full account information" if set(p.data_categories) >= ACCOUNT_INFORMATION else "data"
            yield Issue(
                f"purposes.{i}.data_categories",
                f"{_name(p)} sends {what} ({', '.join(extra)}) where safety verdicts and a hashed number would do",
            )
        if not p.pseudonymised:
            yield Issue(f"purposes.{i}.pseudonymised", f"{_name(p)} sends identifiers in clear, not pseudonymised")


# R16: account linking declared and consent-gated


@rule("R16")
def r16_device_signals(policy: Policy) -> Iterator[Issue]:
    """R16: the vendor device id (the 'both apps installed' signal) travels only under account linking."""
    for i, p in enumerate(policy.purposes):
        if p.use == Use.ACCOUNT_LINKING:
            continue
        for j, c in enumerate(p.data_categories):
            if c == DataCategory.VENDOR_DEVICE_ID:
                yield Issue(
                    f"purposes.{i}.data_categories.{j}",
                    f"{_name(p)} sends the vendor device id, a cross-app linking signal, outside an account_linking "
                    "purpose",
                )


@rule("R16")
def r16_linking_consent(policy: Policy) -> Iterator[Issue]:
    """R16: an account linking purpose is based on consent."""
    for i, p in enumerate(policy.purposes):
        if p.use == Use.ACCOUNT_LINKING and p.legal_basis != LegalBasis.CONSENT:
            basis = p.legal_basis or "no basis"
            yield Issue(f"purposes.{i}.legal_basis", f"account linking {_name(p)} rests on {basis}, not consent")


@rule("R16")
def r16_linking_declared(policy: Policy) -> Iterator[Issue]:
    """R16: a controller sent identifiers for ads or suggestions can match accounts, so linking must be declared."""
    linked = {
        rid
        for p in policy.purposes
        if p.use == Use.ACCOUNT_LINKING and p.legal_basis == LegalBasis.CONSENT
        for rid in p.recipients
    }
    for i, p in enumerate(policy.purposes):
        keys = [c for c in p.data_categories if c in LINKING_KEYS]
        if p.use not in (Use.ADVERTISING, Use.FRIEND_SUGGESTIONS) or not keys:
            continue
        for j, rid in enumerate(p.recipients):
            r = policy.recipient(rid)
            if r.role != RecipientRole.PROCESSOR and rid not in linked:
                yield Issue(
                    f"purposes.{i}.recipients.{j}",
                    f"{_name(p)} sends {', '.join(keys)} to '{r.name}' for its own use, which lets it match accounts, "
                    "but no consent-based account_linking purpose declares linking to it",
                )


# R17: change management


@rule("R17")
def r17_no_opt_out_deadline(policy: Policy) -> Iterator[Issue]:
    """R17: a change never switches an optional purpose on and leaves the user a deadline to switch it off."""
    for i, p in enumerate(policy.purposes):
        if p.default == Choice.IN and p.window_days is not None and p.use in NON_ESSENTIAL:
            yield Issue(
                f"purposes.{i}.default",
                f"{_name(p)} runs on opt-out with a {p.window_days}-day deadline: a change must ask for this purpose "
                "explicitly and keep prior choices",
            )


# R18: minors


@rule("R18")
def r18_closed_to_minors(policy: Policy) -> Iterator[Issue]:
    """R18: ads, friend suggestions and account linking (profiling) are closed to minors, whatever they tap."""
    for i, p in enumerate(policy.purposes):
        if p.use in OWN_PURPOSES and not p.closed_to_minors:
            yield Issue(
                f"purposes.{i}.closed_to_minors", f"{_name(p)} profiles users for {_use(p)} and is open to minors"
            )


# R19: retention


@rule("R19")
def r19_retention(policy: Policy) -> Iterator[Issue]:
    """R19: every purpose states how long the recipient may keep the data."""
    for i, p in enumerate(policy.purposes):
        if p.retention_days is None:
            yield Issue(f"purposes.{i}.retention_days", f"{_name(p)} sets no retention period")
