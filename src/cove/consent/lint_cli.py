"""``cove policy check``: lint a policy file from the command line (registered by the CLI, not here)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from cove.consent.lint import Finding, Profile, Severity, lint
from cove.consent.policy import PolicyError, load_policy


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


_COLOURS = {Severity.ERROR: typer.colors.RED, Severity.WARNING: typer.colors.YELLOW}


LAW = typer.Option(Profile.EU, "--law", "-l", help="Whose law to check against: eu and uk report errors, us warnings")


def finding_line(finding: Finding) -> str:
    severity = typer.style(f"{finding.severity:<7}", fg=_COLOURS[finding.severity], bold=True)
    return f"{severity} {finding.rule:<4} {finding.where}: {finding.message} [{finding.law}]"


def check(
    file: Path = typer.Argument(..., help="The policy file (TOML), e.g. policies/cove-default.toml"),
    law: Profile = LAW,
    format: OutputFormat = typer.Option(OutputFormat.TEXT, "--format", "-f", help="text for people, json for CI"),
) -> None:
    """Check a privacy policy against the consent requirements R1-R19 before it ships.

    Each finding names the rule, the path in the file, what is wrong and the law or regulator's finding it answers.

    Exit status: 0 no errors (warnings allowed), 1 the linter found an error, 2 the file is not a valid policy.

    A file that is not a valid policy prints each problem to stderr as FILE: PATH: MESSAGE.
    """
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for path, message in exc.problems:
            typer.echo(f"{exc.source}: {path}: {message}", err=True)
        raise typer.Exit(2) from None

    findings = lint(policy, law)
    errors = sum(f.severity == Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    if format == OutputFormat.JSON:
        report = {
            "file": str(file),
            "law": str(law),
            "errors": errors,
            "warnings": warnings,
            "findings": [f.to_dict() for f in findings],
        }
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for finding in findings:
            typer.echo(finding_line(finding))
        verdict = "clean" if not findings else f"{errors} error(s), {warnings} warning(s)"
        typer.echo(f"{file} ({policy.version}) under {law}: {verdict}")
    raise typer.Exit(1 if errors else 0)
