"""What Slack refuses in Block Kit: pure checks of messages, views and options answers.

Each check returns a list of problems, empty when Slack would take the payload. A problem
names where it is and what is wrong, from the argument's own name::

    >>> validate_message([{"type": "header", "text": {"type": "mrkdwn", "text": "Hi"}}], "Hi")
    ["blocks[0].text.type: must be 'plain_text', not 'mrkdwn'"]

The limits are Slack's documented ones (https://docs.slack.dev/reference/block-kit).
Block types this module does not look into (rich_text, video, file, table...) are only
checked for their ``block_id``; a type Slack does not know is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "MESSAGE_BLOCKS_MAX",
    "TEXT_MAX",
    "VIEW_BLOCKS_MAX",
    "validate_blocks",
    "validate_message",
    "validate_options",
    "validate_submission_answer",
    "validate_text",
    "validate_view",
]

TEXT_MAX = 40_000  # a message's top-level text
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
ID_MAX = 255  # block_id, action_id, callback_id, external_id
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
URL_MAX = 3000
ACCESSIBILITY_LABEL_MAX = 75
PLACEHOLDER_MAX = 150
OPTIONS_MAX = 100  # a select's options, option groups, and options per group
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
CHOICES_MAX = 10  # checkboxes and radio buttons
OVERFLOW_OPTIONS_MAX = 5
INPUT_LENGTH_MAX = 3000  # plain_text_input min_length and max_length
LABEL_MAX = 2000  # input label and hint, image title
ALT_TEXT_MAX = 2000
MARKDOWN_BLOCK_MAX = 12_000
MODAL_TEXT_MAX = 24  # a modal's title, submit and close
PRIVATE_METADATA_MAX = 3000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30

_TEXT_TYPES = ("plain_text", "mrkdwn")
_OPAQUE_BLOCKS = frozenset({"rich_text", "video", "file", "table", "context_actions"})
_SELECTS = frozenset(
    f"{multi}{kind}_select"
    for multi in ("", "multi_")
    for kind in ("static", "external", "users", "conversations", "channels")
)
_PICKERS = frozenset({"datepicker", "timepicker", "datetimepicker"})
_TEXT_INPUTS = frozenset({"plain_text_input", "email_text_input", "url_text_input", "number_input"})
_OTHER_ELEMENTS = frozenset(
    {"rich_text_input", "file_input", "workflow_button", "feedback_buttons", "icon_button"}
)
_CHOOSERS = _SELECTS | _PICKERS | {"checkboxes", "radio_buttons"}
# Where each element may go: a section's accessory, an actions block, an input block.
_ACCESSORIES = (_CHOOSERS - {"datetimepicker"}) | {"button", "overflow", "image", "workflow_button"}
_ACTIONS_ELEMENTS = _CHOOSERS | {"button", "overflow", "workflow_button", "rich_text_input"}
_ACTIONS_ELEMENTS |= {"feedback_buttons", "icon_button"}
_INPUT_ELEMENTS = _CHOOSERS | _TEXT_INPUTS | {"rich_text_input", "file_input"}

Problems = list[str]


# -- entry points ------------------------------------------------------------------------------


def validate_message(blocks: Any, text: Any) -> Problems:
    """Problems of a message's ``blocks`` (``None``: none sent) and top-level ``text``."""
    return [*validate_text(text), *validate_blocks(blocks)]


def validate_text(text: Any) -> Problems:
    """Problems of a message's top-level ``text`` (``None``: none sent)."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [f"text: must be a string, not {_kind(text)}"]
    return _length("text", text, TEXT_MAX)


def validate_blocks(
    blocks: Any, *, most: int = MESSAGE_BLOCKS_MAX, path: str = "blocks"
) -> Problems:
    """Problems of a list of blocks (``None``: none sent); block_ids must be unique."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return [f"{path}: must be a list, not {_kind(blocks)}"]
    problems = _count(path, blocks, most, "blocks")
    seen: dict[str, str] = {}
    for i, block in enumerate(blocks):
        where = f"{path}[{i}]"
        problems += _block(where, block)
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                problems.append(
                    f"{where}.block_id: {block_id!r} is already used by {seen[block_id]}"
                )
            seen.setdefault(block_id, where)
    return problems


def validate_view(view: Any, *, types: Iterable[str] = ("modal", "home")) -> Problems:
    """Problems of a view for ``views.*``; ``types`` are the view types the method takes."""
    if not isinstance(view, dict):
        return [f"view: must be an object, not {_kind(view)}"]
    kind, allowed = view.get("type"), tuple(types)
    if kind not in allowed:
        return [f"view.type: must be one of {_names(allowed)}, not {kind!r}"]
    problems = [
        *_id("view.callback_id", view.get("callback_id")),
        *_id("view.external_id", view.get("external_id")),
        *_string("view.private_metadata", view.get("private_metadata"), PRIVATE_METADATA_MAX),
    ]
    if "blocks" not in view:
        problems.append("view.blocks: missing")
    else:
        problems += validate_blocks(view["blocks"], most=VIEW_BLOCKS_MAX, path="view.blocks")
    if kind == "modal":
        problems += _text_object(
            "view.title", view.get("title"), MODAL_TEXT_MAX, plain=True, required=True
        )
        for key in ("submit", "close"):
            problems += _text_object(f"view.{key}", view.get(key), MODAL_TEXT_MAX, plain=True)
        blocks = view.get("blocks")
        has_input = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if has_input and view.get("submit") is None:
            problems.append("view.submit: missing, and a modal with input blocks needs it")
    return problems


SUBMISSION_ACTIONS = ("errors", "update", "push", "clear")


def validate_submission_answer(answer: Any, view: Any) -> Problems:
    """Problems of the ack to a ``view_submission`` of ``view`` (``None``: an empty ack).

    An empty ack closes the modal. ``response_action: errors`` maps block ids to
    messages, and Slack shows each under its field: only input blocks that exist in
    the view can carry one (Slack refuses the whole answer otherwise, and the user sees
    "We had some trouble connecting"). ``update`` and ``push`` carry a view of their own.
    """
    if answer is None or answer == {}:
        return []
    if not isinstance(answer, dict):
        return [f"answer: must be an object, not {_kind(answer)}"]
    action = answer.get("response_action")
    if action not in SUBMISSION_ACTIONS:
        return [
            f"answer.response_action: must be one of {_names(SUBMISSION_ACTIONS)}, not {action!r}"
        ]
    if action in ("update", "push"):
        return validate_view(answer.get("view"), types=("modal",))
    if action == "clear":
        return []
    errors = answer.get("errors")
    if not isinstance(errors, dict) or not errors:
        return ["answer.errors: must be an object with at least one block id"]
    blocks = view.get("blocks") if isinstance(view, dict) else None
    inputs = {
        block.get("block_id")
        for block in blocks or []
        if isinstance(block, dict) and block.get("type") == "input"
    }
    problems: Problems = []
    for block_id, message in errors.items():
        if block_id not in inputs:
            problems.append(f"answer.errors.{block_id}: no input block with this block_id")
        if not isinstance(message, str) or not message.strip():
            problems.append(f"answer.errors.{block_id}: must be a non-empty string")
    return problems


def validate_options(answer: Any) -> Problems:
    """Problems of an answer to a ``block_suggestion`` (the options of an external_select).

    The answer holds ``options`` (at most 100) or ``option_groups`` (at most 100 groups
    of at most 100 options each); an option's text is plain_text.
    """
    if not isinstance(answer, dict):
        return [f"answer: must be an object, not {_kind(answer)}"]
    if ("options" in answer) == ("option_groups" in answer):
        return ["answer: must hold either options or option_groups"]
    return _options_or_groups("", answer, least=0)


# -- blocks ------------------------------------------------------------------------------------


def _block(path: str, block: Any) -> Problems:
    if not isinstance(block, dict):
        return [f"{path}: must be an object, not {_kind(block)}"]
    kind = block.get("type")
    problems = _id(f"{path}.block_id", block.get("block_id"))
    if kind is None:
        return [*problems, f"{path}.type: missing"]
    check = _BLOCKS.get(kind)
    if check is None and kind not in _OPAQUE_BLOCKS:
        return [*problems, f"{path}.type: unknown block type {kind!r}"]
    return problems + (check(path, block) if check else [])


def _section(path: str, block: dict[str, Any]) -> Problems:
    text, fields = block.get("text"), block.get("fields")
    if text is None and fields is None:
        return [f"{path}: needs text or fields"]
    problems = _text_object(f"{path}.text", text, SECTION_TEXT_MAX)
    if fields is not None:
        problems += _list(f"{path}.fields", fields, SECTION_FIELDS_MAX, "fields", least=1)
        if isinstance(fields, list):
            for i, field in enumerate(fields):
                problems += _text_object(
                    f"{path}.fields[{i}]", field, SECTION_FIELD_MAX, required=True
                )
    if "accessory" in block:
        problems += _element(f"{path}.accessory", block["accessory"], _ACCESSORIES)
    return problems


def _context(path: str, block: dict[str, Any]) -> Problems:
    elements = block.get("elements")
    problems = _list(f"{path}.elements", elements, CONTEXT_ELEMENTS_MAX, "elements", least=1)
    for i, element in enumerate(elements if isinstance(elements, list) else []):
        where = f"{path}.elements[{i}]"
        if isinstance(element, dict) and element.get("type") == "image":
            problems += _image(where, element)
        else:
            problems += _text_object(where, element, CONTEXT_TEXT_MAX, required=True)
    return problems


def _header(path: str, block: dict[str, Any]) -> Problems:
    return _text_object(
        f"{path}.text", block.get("text"), HEADER_TEXT_MAX, plain=True, required=True
    )


def _actions(path: str, block: dict[str, Any]) -> Problems:
    elements = block.get("elements")
    problems = _list(f"{path}.elements", elements, ACTIONS_ELEMENTS_MAX, "elements", least=1)
    seen: set[str] = set()
    for i, element in enumerate(elements if isinstance(elements, list) else []):
        where = f"{path}.elements[{i}]"
        problems += _element(where, element, _ACTIONS_ELEMENTS)
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if isinstance(action_id, str):
            if action_id in seen:
                problems.append(f"{where}.action_id: {action_id!r} is already used in this block")
            seen.add(action_id)
    return problems


def _input(path: str, block: dict[str, Any]) -> Problems:
    problems = [
        *_text_object(f"{path}.label", block.get("label"), LABEL_MAX, plain=True, required=True),
        *_text_object(f"{path}.hint", block.get("hint"), LABEL_MAX, plain=True),
    ]
    if block.get("element") is None:
        return [*problems, f"{path}.element: missing"]
    return problems + _element(f"{path}.element", block["element"], _INPUT_ELEMENTS)


def _image_block(path: str, block: dict[str, Any]) -> Problems:
    return [
        *_image(path, block),
        *_text_object(f"{path}.title", block.get("title"), LABEL_MAX, plain=True),
    ]


def _markdown(path: str, block: dict[str, Any]) -> Problems:
    return _string(f"{path}.text", block.get("text"), MARKDOWN_BLOCK_MAX, required=True)


def _divider(path: str, block: dict[str, Any]) -> Problems:
    return []


_BLOCKS: dict[str, Callable[[str, dict[str, Any]], Problems]] = {
    "section": _section,
    "context": _context,
    "header": _header,
    "actions": _actions,
    "input": _input,
    "image": _image_block,
    "markdown": _markdown,
    "divider": _divider,
}


# -- elements ----------------------------------------------------------------------------------


def _element(path: str, element: Any, allowed: frozenset[str]) -> Problems:
    if not isinstance(element, dict):
        return [f"{path}: must be an object, not {_kind(element)}"]
    kind = element.get("type")
    if kind is None:
        return [f"{path}.type: missing"]
    if kind not in _ELEMENTS and kind not in _OTHER_ELEMENTS:
        return [f"{path}.type: unknown element type {kind!r}"]
    if kind not in allowed:
        return [f"{path}.type: a {kind} cannot be here"]
    problems = _id(f"{path}.action_id", element.get("action_id"))
    if "confirm" in element:
        problems += _confirm(f"{path}.confirm", element["confirm"])
    check = _ELEMENTS.get(kind)
    return problems + (check(path, element) if check else [])


def _button(path: str, element: dict[str, Any]) -> Problems:
    problems = [
        *_text_object(
            f"{path}.text", element.get("text"), BUTTON_TEXT_MAX, plain=True, required=True
        ),
        *_string(f"{path}.value", element.get("value"), BUTTON_VALUE_MAX),
        *_string(f"{path}.url", element.get("url"), URL_MAX),
        *_string(
            f"{path}.accessibility_label",
            element.get("accessibility_label"),
            ACCESSIBILITY_LABEL_MAX,
        ),
    ]
    style = element.get("style")
    if style is not None and style not in ("primary", "danger"):
        problems.append(f"{path}.style: must be 'primary' or 'danger', not {style!r}")
    return problems


def _select(path: str, element: dict[str, Any]) -> Problems:
    kind = str(element["type"])
    problems = _placeholder(path, element)
    if kind.endswith("static_select"):
        if ("options" in element) == ("option_groups" in element):
            problems.append(f"{path}: needs either options or option_groups")
        else:
            problems += _options_or_groups(f"{path}.", element, least=1)
    if "initial_option" in element:
        problems += _option(f"{path}.initial_option", element["initial_option"], mrkdwn=False)
    if kind.startswith("multi_"):
        most = element.get("max_selected_items")
        if most is not None and (not isinstance(most, int) or most < 1):
            problems.append(f"{path}.max_selected_items: must be at least 1, not {most!r}")
    return problems


def _choices(path: str, element: dict[str, Any]) -> Problems:
    problems = _list(f"{path}.options", element.get("options"), CHOICES_MAX, "options", least=1)
    return problems + _each_option(f"{path}.options", element.get("options"), mrkdwn=True)


def _overflow(path: str, element: dict[str, Any]) -> Problems:
    options = element.get("options")
    problems = _list(f"{path}.options", options, OVERFLOW_OPTIONS_MAX, "options", least=1)
    return problems + _each_option(f"{path}.options", options, mrkdwn=False)


def _plain_text_input(path: str, element: dict[str, Any]) -> Problems:
    problems = _placeholder(path, element)
    lengths = {key: element.get(key) for key in ("min_length", "max_length")}
    for key, value in lengths.items():
        least = 1 if key == "max_length" else 0
        if value is not None and (
            not isinstance(value, int) or not least <= value <= INPUT_LENGTH_MAX
        ):
            problems.append(
                f"{path}.{key}: must be a number from {least} to {INPUT_LENGTH_MAX:,}, "
                f"not {value!r}"
            )
    low, high = lengths["min_length"], lengths["max_length"]
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(f"{path}.min_length: {low:,} is more than max_length {high:,}")
    return problems


def _placeholder(path: str, element: dict[str, Any]) -> Problems:
    return _text_object(
        f"{path}.placeholder", element.get("placeholder"), PLACEHOLDER_MAX, plain=True
    )


def _image(path: str, element: dict[str, Any]) -> Problems:
    problems = _string(f"{path}.alt_text", element.get("alt_text"), ALT_TEXT_MAX, required=True)
    if element.get("image_url") is None and element.get("slack_file") is None:
        return [*problems, f"{path}: needs image_url or slack_file"]
    return problems + _string(f"{path}.image_url", element.get("image_url"), URL_MAX)


_ELEMENTS: dict[str, Callable[[str, dict[str, Any]], Problems]] = {
    "button": _button,
    **dict.fromkeys(_SELECTS, _select),
    **dict.fromkeys(_PICKERS | _TEXT_INPUTS - {"plain_text_input"}, _placeholder),
    "plain_text_input": _plain_text_input,
    "checkboxes": _choices,
    "radio_buttons": _choices,
    "overflow": _overflow,
    "image": _image,
}


# -- composition objects -----------------------------------------------------------------------


def _options_or_groups(prefix: str, holder: dict[str, Any], *, least: int) -> Problems:
    """``options`` or ``option_groups`` of a select or an answer: plain_text options."""
    most = OPTIONS_MAX
    if "options" in holder:
        options = holder["options"]
        problems = _list(f"{prefix}options", options, most, "options", least=least)
        return problems + _each_option(f"{prefix}options", options, mrkdwn=False)
    groups = holder["option_groups"]
    problems = _list(f"{prefix}option_groups", groups, most, "option groups", least=least)
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        where = f"{prefix}option_groups[{i}]"
        if not isinstance(group, dict):
            problems.append(f"{where}: must be an object, not {_kind(group)}")
            continue
        problems += _text_object(
            f"{where}.label", group.get("label"), OPTION_TEXT_MAX, plain=True, required=True
        )
        problems += _list(f"{where}.options", group.get("options"), most, "options", least=1)
        problems += _each_option(f"{where}.options", group.get("options"), mrkdwn=False)
    return problems


def _each_option(path: str, options: Any, *, mrkdwn: bool) -> Problems:
    if not isinstance(options, list):
        return []  # already reported by _list
    return [p for i, o in enumerate(options) for p in _option(f"{path}[{i}]", o, mrkdwn=mrkdwn)]


def _option(path: str, option: Any, *, mrkdwn: bool) -> Problems:
    if not isinstance(option, dict):
        return [f"{path}: must be an object, not {_kind(option)}"]
    text = option.get("text")
    return [
        *_text_object(f"{path}.text", text, OPTION_TEXT_MAX, plain=not mrkdwn, required=True),
        *_string(f"{path}.value", option.get("value"), OPTION_VALUE_MAX, required=True),
        *_text_object(
            f"{path}.description", option.get("description"), OPTION_TEXT_MAX, plain=not mrkdwn
        ),
        *_string(f"{path}.url", option.get("url"), URL_MAX),
    ]


def _confirm(path: str, confirm: Any) -> Problems:
    if not isinstance(confirm, dict):
        return [f"{path}: must be an object, not {_kind(confirm)}"]
    problems = [
        *_text_object(
            f"{path}.title", confirm.get("title"), CONFIRM_TITLE_MAX, plain=True, required=True
        ),
        *_text_object(f"{path}.text", confirm.get("text"), CONFIRM_TEXT_MAX, required=True),
    ]
    for key in ("confirm", "deny"):
        problems += _text_object(
            f"{path}.{key}", confirm.get(key), CONFIRM_BUTTON_MAX, plain=True, required=True
        )
    return problems


def _text_object(
    path: str, value: Any, limit: int, *, plain: bool = False, required: bool = False
) -> Problems:
    """A text object: ``plain_text`` (or ``mrkdwn`` unless ``plain``), non-empty, short enough."""
    if value is None:
        return [f"{path}: missing"] if required else []
    if not isinstance(value, dict):
        return [f"{path}: must be a text object, not {_kind(value)}"]
    kind = value.get("type")
    allowed = ("plain_text",) if plain else _TEXT_TYPES
    if kind not in allowed:
        return [f"{path}.type: must be {_names(allowed)}, not {kind!r}"]
    problems = _string(f"{path}.text", value.get("text"), limit, required=True)
    if kind == "plain_text" and "verbatim" in value:
        problems.append(f"{path}.verbatim: only for mrkdwn")
    if kind == "mrkdwn" and "emoji" in value:
        problems.append(f"{path}.emoji: only for plain_text")
    return problems


# -- small pieces ------------------------------------------------------------------------------


def _string(path: str, value: Any, limit: int, *, required: bool = False) -> Problems:
    if value is None:
        return [f"{path}: missing"] if required else []
    if not isinstance(value, str):
        return [f"{path}: must be a string, not {_kind(value)}"]
    if required and not value:
        return [f"{path}: must not be empty"]
    return _length(path, value, limit)


def _id(path: str, value: Any) -> Problems:
    return _string(path, value, ID_MAX)


def _length(path: str, value: str, limit: int) -> Problems:
    if len(value) > limit:
        return [f"{path}: {len(value):,} characters, more than {limit:,}"]
    return []


def _count(path: str, items: list[Any], most: int, noun: str, least: int = 0) -> Problems:
    if len(items) > most:
        return [f"{path}: {len(items):,} {noun}, more than {most:,}"]
    if len(items) < least:
        return [f"{path}: {len(items)} {noun}, fewer than {least}"]
    return []


def _list(path: str, value: Any, most: int, noun: str, *, least: int = 0) -> Problems:
    if value is None:
        return [f"{path}: missing"]
    if not isinstance(value, list):
        return [f"{path}: must be a list, not {_kind(value)}"]
    return _count(path, value, most, noun, least)


def _kind(value: Any) -> str:
    names: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    return names.get(type(value), repr(value))


def _names(names: Iterable[str]) -> str:
    return " or ".join(repr(n) for n in names)
