"""The policy model, the linter and `cove policy check`, on the two example policies and variants of them.

The August 2016 policy must fail under EU and UK law at the exact places regulators found fault with, draw only
warnings under the US profile, and Cove's default policy must pass clean everywhere.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cove.consent.categories import DataCategory
from cove.consent.lint import LAWS, RULES, Finding, Profile, Severity, lint
from cove.consent.lint_cli import check
from cove.consent.policy import LegalBasis, Policy, PolicyError, Use, load_policy, parse_policy

POLICIES = Path(__file__).resolve().parents[1] / "policies"
ORIGINAL = POLICIES / "2016-original.toml"
DEFAULT = POLICIES / "cove-default.toml"
VENDOR_ID = DataCategory.VENDOR_DEVICE_ID.value


def rules_at(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.rule, f.where) for f in findings}


def resolve(data: Any, where: str) -> Any:
    """Follow a dotted path (``purposes.0.default``) through a dumped policy; KeyError or IndexError if absent."""
    for part in where.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def variant(base: Path, changes: dict[str, Any]) -> Policy:
    """The policy at ``base`` with the values at some paths replaced (a value of ``...`` deletes the key)."""
    data = load_policy(base).model_dump(mode="json")
    for where, value in changes.items():
        *parents, last = where.split(".")
        target = resolve(data, ".".join(parents)) if parents else data
        key = int(last) if isinstance(target, list) else last
        if value is ...:
            del target[key]
        else:
            target[key] = value
    return parse_policy(data, f"{base.name} (variant)")


@pytest.fixture(scope="module")
def original() -> Policy:
    return load_policy(ORIGINAL)


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy(DEFAULT)


# The example policies


@pytest.mark.parametrize("path", [ORIGINAL, DEFAULT], ids=lambda p: p.name)
def test_example_policies_load(path: Path) -> None:
    policy = load_policy(path)
    assert policy.purposes and policy.recipients and policy.rollout.waves
    assert len(policy.text_hash()) == 64


def test_original_models_2016(original: Policy) -> None:
    assert original.effective.isoformat() == "2016-08-25T16:00:00+00:00"
    assert [r.role for r in original.recipients] == [None]
    ads, suggestions, safety, analytics = original.purposes
    for p in (ads, suggestions):
        assert (p.legal_basis, p.default, p.window_days) == (LegalBasis.CONSENT, "in", 30)
    assert safety.legal_basis is None and not safety.objectable and not safety.pseudonymised
    assert analytics.legal_basis is None and analytics.use == Use.ANALYTICS
    assert all(DataCategory.VENDOR_DEVICE_ID in p.data_categories for p in original.purposes)
    assert not any(p.use == Use.ACCOUNT_LINKING for p in original.purposes)


# The 2016 policy under each profile

REQUIRED_2016_EU = {
    ("R1", "purposes.0.default"),  # ads pre-ticked
    ("R1", "purposes.1.default"),  # friend suggestions pre-ticked
    ("R1", "purposes.3.default"),  # analytics on for everyone, bundled with the terms
    ("R2", "summary"),  # "accept to continue using" while switching on optional purposes
    ("R3", "purposes.2.legal_basis"),  # safety: no legal basis
    ("R3", "purposes.3.legal_basis"),  # analytics: no legal basis
    ("R4", "purposes.0.window_days"),  # 30-day window
    ("R4", "purposes.1.window_days"),
    ("R7", "summary"),  # the first layer leaves out ads, suggestions, analytics, the recipient
    ("R9", "recipients.0.role"),  # "Facebook family of companies", no role
    ("R13", "purposes.2.objectable"),  # safety beyond what is necessary, not objectable
    ("R13", "purposes.3.objectable"),  # analytics, not objectable
    ("R14", "purposes.2.data_categories"),  # full account information for safety
    ("R14", "purposes.2.pseudonymised"),
    ("R16", "purposes.0.data_categories.6"),  # vendor device id under ads
    ("R16", "purposes.1.data_categories.6"),  # ... suggestions
    ("R16", "purposes.2.data_categories.6"),  # ... safety
    ("R16", "purposes.3.data_categories.6"),  # ... analytics
    ("R16", "purposes.0.recipients.0"),  # ads lets Facebook match accounts, no linking purpose
    ("R16", "purposes.1.recipients.0"),
    ("R17", "purposes.0.default"),  # opt-out with a deadline
    ("R17", "purposes.1.default"),
    ("R18", "purposes.0.closed_to_minors"),
    ("R18", "purposes.1.closed_to_minors"),
    ("R19", "purposes.0.retention_days"),
    ("R19", "purposes.1.retention_days"),
    ("R19", "purposes.2.retention_days"),
    ("R19", "purposes.3.retention_days"),
}


def test_original_under_eu_flags_each_failing(original: Policy) -> None:
    findings = lint(original, "eu")
    missing = REQUIRED_2016_EU - rules_at(findings)
    assert not missing, f"not flagged: {sorted(missing)}"
    assert all(f.severity == Severity.ERROR for f in findings)


def test_original_findings_cite_law_and_point_into_the_file(original: Policy) -> None:
    dumped = original.model_dump(mode="json")
    for f in lint(original, "eu"):
        resolve(dumped, f.where)  # a real path in the policy
        assert f.message and f.law == LAWS[f.rule].cite(Profile.EU)
    window = next(f for f in lint(original, "eu") if f.rule == "R4")
    assert window.law == "GDPR Art. 7(3); 30-day window (2016)"


def test_original_under_uk_is_errors_citing_uk_gdpr(original: Policy) -> None:
    uk = lint(original, "uk")
    assert rules_at(uk) == rules_at(lint(original, "eu"))
    assert all(f.severity == Severity.ERROR for f in uk)
    assert all("UK GDPR" in f.law for f in uk)


def test_original_under_us_is_warnings_only(original: Policy) -> None:
    us = lint(original, Profile.US)
    assert us and all(f.severity == Severity.WARNING for f in us)
    assert rules_at(us) == rules_at(lint(original, "eu"))
    assert any("FTC" in f.law for f in us)


# Cove's default policy


@pytest.mark.parametrize("profile", list(Profile))
def test_default_passes_clean(default: Policy, profile: Profile) -> None:
    assert lint(default, profile) == []


def test_default_meets_the_design(default: Policy) -> None:
    by_id = {p.id: p for p in default.purposes}
    assert set(by_id) == {"safety", "analytics", "account_linking", "friend_suggestions", "ads"}
    safety = by_id["safety"]
    assert safety.legal_basis == LegalBasis.LEGITIMATE_INTEREST and safety.pseudonymised
    assert set(safety.data_categories) == {DataCategory.SAFETY_VERDICTS, DataCategory.PHONE_NUMBER}
    for pid in ("analytics", "account_linking", "friend_suggestions", "ads"):
        p = by_id[pid]
        assert (p.legal_basis, p.default, p.window_days) == (LegalBasis.CONSENT, "out", None)
    assert all(p.retention_days for p in default.purposes)
    waves = default.rollout.waves
    assert [w.percent for w in waves] == [1, 10, 100]
    assert 49 in waves[0].country_codes and 1 not in waves[0].country_codes and waves[-1].country_codes == []


# Each check on a small variant of the default policy


@pytest.mark.parametrize(
    ("changes", "rule", "where"),
    [
        ({"purposes.4.default": "in"}, "R1", "purposes.4.default"),
        ({"purposes.1.legal_basis": None}, "R3", "purposes.1.legal_basis"),
        ({"purposes.4.legal_basis": "legitimate_interest"}, "R3", "purposes.4.legal_basis"),
        ({"purposes.1.legal_basis": "contract"}, "R3", "purposes.1.legal_basis"),
        ({"purposes.0.legitimate_interest": None}, "R3", "purposes.0.legitimate_interest"),
        ({"purposes.0.balancing_test": None}, "R3", "purposes.0.balancing_test"),
        ({"purposes.3.legitimate_interest": "we would like to"}, "R3", "purposes.3.legitimate_interest"),
        ({"purposes.1.window_days": 30}, "R4", "purposes.1.window_days"),
        ({"purposes.1.title": "Business intelligence"}, "R7", "summary"),
        ({"recipients.0.name": "Parent family of companies"}, "R7", "summary"),
        ({"recipients.0.role": None}, "R9", "recipients.0.role"),
        ({"recipients.1.contract_id": None}, "R9", "recipients.1.contract_id"),
        ({"purposes.4.recipients": ["parent_processor"]}, "R9", "purposes.4.recipients.0"),
        (
            {"purposes.1.legal_basis": "legitimate_interest", "purposes.1.legitimate_interest": "x"},
            "R13",
            "purposes.1.objectable",
        ),
        ({"purposes.0.data_categories": ["safety.verdicts", "device.model"]}, "R14", "purposes.0.data_categories"),
        ({"purposes.0.pseudonymised": False}, "R14", "purposes.0.pseudonymised"),
        ({"purposes.4.data_categories": ["device.os", VENDOR_ID]}, "R16", "purposes.4.data_categories.1"),
        ({"purposes.2.legal_basis": "legitimate_interest"}, "R16", "purposes.2.legal_basis"),
        ({"purposes.2.recipients": ["parent_processor"]}, "R16", "purposes.3.recipients.0"),
        ({"purposes.3.default": "in", "purposes.3.window_days": 30}, "R17", "purposes.3.default"),
        ({"purposes.4.closed_to_minors": False}, "R18", "purposes.4.closed_to_minors"),
        ({"purposes.2.retention_days": None}, "R19", "purposes.2.retention_days"),
    ],
)
def test_each_check_on_a_variant(changes: dict[str, Any], rule: str, where: str) -> None:
    findings = lint(variant(DEFAULT, changes), "eu")
    assert (rule, where) in rules_at(findings), [f.to_dict() for f in findings]


def test_processor_used_for_its_own_ads_is_an_error_even_in_the_us() -> None:
    """Calling a recipient a processor while it runs its own ads contradicts the policy itself (FTC Act §5)."""
    us = lint(variant(DEFAULT, {"purposes.4.recipients": ["parent_processor"]}), "us")
    own = [f for f in us if f.where == "purposes.4.recipients.0"]
    assert own and all(f.severity == Severity.ERROR for f in own)


def test_every_rule_is_documented_and_cited() -> None:
    assert {r.id for r in RULES} == set(LAWS)
    for r in RULES:
        assert r.doc.startswith(f"{r.id}:"), r.name
        assert r.name.startswith(f"{r.id.lower()}_"), r.name


def test_unknown_profile_is_refused(default: Policy) -> None:
    with pytest.raises(ValueError):
        lint(default, "br")


# Any pre-ticked consent purpose is caught

purpose_fields = st.fixed_dictionaries(
    {
        "title": st.text(min_size=1, max_size=30),
        "description": st.just("added by a property test"),
        "use": st.sampled_from(list(Use)),
        "data_categories": st.lists(st.sampled_from(list(DataCategory)), min_size=1, unique=True),
        "recipients": st.sampled_from([["parent"], ["parent_processor"], ["parent", "parent_processor"]]),
        "window_days": st.none() | st.integers(1, 365),
        "objectable": st.booleans(),
        "closed_to_minors": st.booleans(),
        "pseudonymised": st.booleans(),
        "retention_days": st.none() | st.integers(1, 3650),
    }
)


@settings(max_examples=75, deadline=None)
@given(
    base=st.sampled_from([DEFAULT, ORIGINAL]),
    fields=purpose_fields,
    position=st.integers(0, 10),
    flip_existing=st.booleans(),
)
def test_any_pre_ticked_consent_purpose_is_flagged_r1(
    base: Path, fields: dict[str, Any], position: int, flip_existing: bool
) -> None:
    data = copy.deepcopy(_dumped(base))
    purposes = data["purposes"]
    consent = [i for i, p in enumerate(purposes) if p["legal_basis"] == "consent"]
    if flip_existing and consent:
        index = consent[position % len(consent)]
        purposes[index]["default"] = "in"
    else:
        index = position % (len(purposes) + 1)
        if base == ORIGINAL:
            fields = {**fields, "recipients": ["facebook"]}
        purposes.insert(index, {**fields, "id": "added", "legal_basis": "consent", "default": "in"})
    findings = lint(parse_policy(data), "eu")
    assert any(f.rule == "R1" and f.where == f"purposes.{index}.default" for f in findings)
    assert all(f.severity == Severity.ERROR for f in findings)


_DUMPS: dict[Path, dict] = {}


def _dumped(path: Path) -> dict:
    if path not in _DUMPS:
        _DUMPS[path] = load_policy(path).model_dump(mode="json")
    return _DUMPS[path]


# Files that are not policies

INVALID = [
    ("bad_toml", lambda s: s + "\nthis is = = not toml\n", "(syntax)", ""),
    ("unknown_field", lambda s: s.replace('id = "safety"', 'id = "safety"\ncolour = "red"'), "purposes.0.colour", ""),
    ("bad_enum", lambda s: s.replace('use = "safety"', 'use = "marketing"'), "purposes.0.use", "'safety'"),
    (
        "unknown_recipient",
        lambda s: s.replace('recipients = ["parent"]', 'recipients = ["nobody"]', 1),
        "purposes.0.recipients",
        "unknown recipient 'nobody'",
    ),
    ("missing_field", lambda s: s.replace('title = "Spam and abuse protection"\n', ""), "purposes.0.title", "required"),
    (
        "unordered_waves",
        lambda s: s.replace("2026-09-15T00:00:00Z", "2026-08-15T00:00:00Z"),
        "rollout.waves",
        "in order of their start",
    ),
    ("bad_recipient_role", lambda s: s.replace('"processor"', '"sub_processor"'), "recipients.1.role", ""),
]


@pytest.mark.parametrize(("edit", "path", "message"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_files_name_the_path(tmp_path: Path, edit: Any, path: str, message: str) -> None:
    source = DEFAULT.read_text()
    edited = edit(source)
    assert edited != source
    file = tmp_path / "policy.toml"
    file.write_text(edited)
    with pytest.raises(PolicyError) as caught:
        load_policy(file)
    assert caught.value.source == str(file)
    assert any(p == path and message in m for p, m in caught.value.problems), caught.value.problems


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "absent.toml")
    assert caught.value.problems == [("(file)", "no such file")]


# The command

runner = CliRunner()


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(check)
    return app


def test_cli_default_is_clean(cli: typer.Typer) -> None:
    for profile in Profile:
        result = runner.invoke(cli, [str(DEFAULT), "--law", profile.value])
        assert result.exit_code == 0, result.output
        assert "clean" in result.stdout


def test_cli_original_fails_in_the_eu(cli: typer.Typer) -> None:
    result = runner.invoke(cli, [str(ORIGINAL)])
    assert result.exit_code == 1
    assert "R4" in result.stdout and "purposes.0.window_days" in result.stdout
    assert "GDPR Art. 7(3)" in result.stdout


def test_cli_original_only_warns_in_the_us(cli: typer.Typer) -> None:
    result = runner.invoke(cli, [str(ORIGINAL), "-l", "us"])
    assert result.exit_code == 0
    assert "warning" in result.stdout and "error " not in result.stdout


@pytest.mark.parametrize(("profile", "code"), [("eu", 1), ("uk", 1), ("us", 0)])
def test_cli_json(cli: typer.Typer, original: Policy, profile: str, code: int) -> None:
    result = runner.invoke(cli, [str(ORIGINAL), "--law", profile, "--format", "json"])
    assert result.exit_code == code
    report = json.loads(result.stdout)
    assert report["file"] == str(ORIGINAL) and report["law"] == profile
    assert report["errors"] + report["warnings"] == len(report["findings"]) == len(lint(original, profile))
    assert (report["errors"] > 0) == (profile != "us")
    assert set(report["findings"][0]) == {"rule", "severity", "where", "message", "law"}


def test_cli_invalid_file_exits_2(cli: typer.Typer, tmp_path: Path) -> None:
    file = tmp_path / "broken.toml"
    file.write_text(DEFAULT.read_text().replace('use = "safety"', 'use = "marketing"'))
    result = runner.invoke(cli, [str(file)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"{file}: purposes.0.use: ")


def test_cli_missing_file_exits_2(cli: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(cli, [str(tmp_path / "absent.toml"), "-f", "json"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{tmp_path / 'absent.toml'}: (file): no such file"
