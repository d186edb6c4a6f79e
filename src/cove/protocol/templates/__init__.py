"""Message templates: the Cloud-API-shaped model, its linter, review states, rendering, signing and the E2E split.

A template is what a business may send to a user who has not written in the last 24 hours, so it is reviewed before use
([M] https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview). Everything here is
pure: the registry, routes and the gateway call it. The relay never sees what a business writes, template or not: the
server signs the text it approved, the user's client verifies it and renders the values itself, and the relay sees only
a header naming the template.

Import from this package (``from cove.protocol.templates import parse_template``); the modules, in the order a
template goes through them, each depending only on the ones above it:

- :mod:`.components`: Meta's limits, the variable syntax (``{{1}}``, ``{{name}}``, :func:`placeholders`), and the
  components and buttons a template is built from (:class:`Header`, :class:`Body`, :class:`UrlButton`...);
- :mod:`.model`: :class:`Template` and its cross-field layout checks, :func:`parse_template`, and
  :class:`Problem` / :class:`TemplateError`, how every refusal here says what is wrong and where;
- :mod:`.linting`: the review of the text, :func:`lint` and its :data:`RULES` (:class:`Finding`,
  :class:`Severity`, :func:`blocks_approval`);
- :mod:`.review`: the status machine, :class:`ReviewState`, its events and :func:`transition`, and the
  :data:`REFUSAL_CODES` a send gets in each status;
- :mod:`.rendering`: :class:`Parameters`, :func:`render` and the checks on values, as the recipient's client
  does it;
- :mod:`.signing`: :class:`ApprovedTemplate`, :func:`approved_payload`, :func:`sign_approved` and
  :func:`verify_approved`;
- :mod:`.message`: the end-to-end split, :class:`TemplateHeader`, :func:`split_template_message` and
  :func:`read_template_message`.
"""

from cove.protocol.templates.components import (
    BODY_TEXT_MAX,
    BUTTON_TEXT_MAX,
    BUTTONS_MAX,
    CANDIDATE,
    FOOTER_TEXT_MAX,
    HEADER_TEXT_MAX,
    IDENTIFIER,
    LANGUAGE,
    NAME,
    NAME_MAX,
    PARAMETER_KEY,
    PHONE_BUTTONS_MAX,
    PHONE_MAX,
    TEMPLATE_NAMES_MAX,
    URL_BUTTONS_MAX,
    URL_MAX,
    Body,
    BodyExample,
    Button,
    Buttons,
    ButtonText,
    ButtonType,
    Component,
    ExampleValue,
    Footer,
    Header,
    HeaderExample,
    HeaderFormat,
    NamedExample,
    OtpButton,
    ParameterFormat,
    PhoneNumberButton,
    QuickReplyButton,
    UrlButton,
    placeholders,
)
from cove.protocol.templates.linting import (
    PROMOTIONAL_WORDING,
    RULES,
    WORDS_PER_VARIABLE,
    Check,
    Finding,
    Issue,
    Rule,
    Severity,
    blocks_approval,
    lint,
    rule,
)
from cove.protocol.templates.message import (
    TemplateHeader,
    TemplateMessageParts,
    header_for,
    read_template_message,
    split_template_message,
)
from cove.protocol.templates.model import Problem, Template, TemplateError, parse_template
from cove.protocol.templates.rendering import (
    BODY_VALUE_MAX,
    HEADER_VALUE_MAX,
    Parameters,
    RenderedButton,
    RenderedMessage,
    Values,
    render,
)
from cove.protocol.templates.review import (
    REFUSAL_CODES,
    Approve,
    Disable,
    Event,
    IllegalTransition,
    Pause,
    Reject,
    Resume,
    ReviewState,
    ReviewStatus,
    Submit,
    transition,
)
from cove.protocol.templates.signing import (
    APPROVED_TYPE,
    ApprovedTemplate,
    approved_payload,
    canonical_json,
    sign_approved,
    verify_approved,
)

__all__ = [
    # components
    "NAME_MAX",
    "HEADER_TEXT_MAX",
    "BODY_TEXT_MAX",
    "FOOTER_TEXT_MAX",
    "BUTTONS_MAX",
    "URL_BUTTONS_MAX",
    "PHONE_BUTTONS_MAX",
    "BUTTON_TEXT_MAX",
    "URL_MAX",
    "PHONE_MAX",
    "TEMPLATE_NAMES_MAX",
    "CANDIDATE",
    "PARAMETER_KEY",
    "LANGUAGE",
    "NAME",
    "IDENTIFIER",
    "placeholders",
    "ParameterFormat",
    "HeaderFormat",
    "ButtonType",
    "ExampleValue",
    "ButtonText",
    "NamedExample",
    "HeaderExample",
    "BodyExample",
    "Header",
    "Body",
    "Footer",
    "QuickReplyButton",
    "UrlButton",
    "PhoneNumberButton",
    "OtpButton",
    "Button",
    "Buttons",
    "Component",
    # model
    "Template",
    "Problem",
    "TemplateError",
    "parse_template",
    # linting
    "Severity",
    "Finding",
    "Issue",
    "Check",
    "Rule",
    "RULES",
    "rule",
    "lint",
    "blocks_approval",
    "PROMOTIONAL_WORDING",
    "WORDS_PER_VARIABLE",
    # review
    "ReviewStatus",
    "ReviewState",
    "Submit",
    "Approve",
    "Reject",
    "Pause",
    "Resume",
    "Disable",
    "Event",
    "IllegalTransition",
    "transition",
    "REFUSAL_CODES",
    # rendering
    "HEADER_VALUE_MAX",
    "BODY_VALUE_MAX",
    "Values",
    "Parameters",
    "RenderedButton",
    "RenderedMessage",
    "render",
    # signing
    "APPROVED_TYPE",
    "ApprovedTemplate",
    "canonical_json",
    "approved_payload",
    "sign_approved",
    "verify_approved",
    # message
    "TemplateHeader",
    "TemplateMessageParts",
    "header_for",
    "split_template_message",
    "read_template_message",
]
