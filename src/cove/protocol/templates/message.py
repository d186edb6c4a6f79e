"""The end-to-end split of a template message: a visible header for the relay, the values in the ciphertext.

The relay needs to know which template a message uses, to enforce opt-in per category, the 24-hour window,
pauses, tiers and caps, but must not read what the business wrote. So a template message is split in two
(:func:`split_template_message`):

- the envelope's visible header, :class:`TemplateHeader`: template id, version, language and category;
- inside the ciphertext: the parameter values, with a copy of that header. The copy lets the recipient's client
  (:func:`read_template_message`) notice a relay that swapped the visible header to make the user's values
  appear in another approved text.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import Field

from cove.protocol.business import Category
from cove.protocol.templates.components import IDENTIFIER, LANGUAGE, _Strict
from cove.protocol.templates.model import Problem, TemplateError, _validated
from cove.protocol.templates.rendering import Parameters, RenderedMessage, _as_parameters, render
from cove.protocol.templates.signing import ApprovedTemplate, canonical_json


class TemplateHeader(_Strict):
    """The visible part of a template message: enough for the relay to enforce opt-in per category, the window,
    pauses, tiers and caps, and for the client to fetch the signed text (the version pins the text the values
    were checked against)."""

    template_id: str = Field(pattern=IDENTIFIER)
    version: int = Field(ge=1)
    language: str = Field(pattern=LANGUAGE)
    category: Category


class _Sealed(_Strict):
    """The plaintext that is encrypted: the values, and the header they were written for."""

    header: TemplateHeader
    parameters: Parameters


class TemplateMessageParts(NamedTuple):
    header: TemplateHeader  # goes in the envelope, visible to the relay
    plaintext: bytes  # goes into the ciphertext


def header_for(approved: ApprovedTemplate) -> TemplateHeader:
    return TemplateHeader(
        template_id=approved.template_id,
        version=approved.version,
        language=approved.template.language,
        category=approved.template.category,
    )


def split_template_message(
    approved: ApprovedTemplate, params: Parameters | list[str] | dict[str, str]
) -> TemplateMessageParts:
    """What goes where in a template message, after checking the values as the recipient's client will."""
    params = _as_parameters(params)
    render(approved.template, params)
    header = header_for(approved)
    sealed = _Sealed(header=header, parameters=params).model_dump(mode="json")
    if not params.payloads:  # left out when empty, so clients that predate quick-reply payloads read it too
        del sealed["parameters"]["payloads"]
    return TemplateMessageParts(header, canonical_json(sealed))


def read_template_message(
    header: TemplateHeader, plaintext: bytes, approved: ApprovedTemplate, sender_business_id: str
) -> RenderedMessage:
    """The recipient's side: check that the visible header, the encrypted copy, the verified approved template
    and the chat's business agree, then render. Raises :class:`TemplateError`."""
    sealed = _validated(_Sealed, plaintext)
    problems = []
    if sealed.header != header:
        problems.append(Problem("header", "header_mismatch", "the visible header is not the one sent with the values"))
    if header != header_for(approved):
        problems.append(Problem("header", "wrong_template", "the header does not name this approved template"))
    if approved.business_id != sender_business_id:
        problems.append(Problem("business_id", "wrong_business", "the template belongs to another business"))
    if problems:
        raise TemplateError(problems)
    return render(approved.template, sealed.parameters)
