"""The `/share-image` parser on its own: no servers, every rule and its message key."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sharing import commands
from bot.sharing.commands import Admin, Form, Help, ListMembers, Share, Status
from bot.sharing.errors import CommandError
from bot.sharing.values import Role

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
MEMBER = "a8f10467abfc4b87b64614ab36eb9ae4"

image_ids = st.uuids().map(str)
member_ids = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=64)
reasons = st.lists(
    st.text(string.ascii_letters + string.digits + ".,:;!?'()", min_size=1, max_size=12),
    max_size=8,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Form()),
        ("   ", Form()),
        ("help", Help()),
        ("  --help ", Help()),
        ("status", Status()),
        (f"list {IMAGE}", ListMembers(IMAGE)),
        (f"{IMAGE} {MEMBER}", Share(IMAGE, MEMBER, "")),
        (f"{IMAGE.upper()} {MEMBER} QA  run", Share(IMAGE, MEMBER, "QA run")),
        (f"unshare {IMAGE} {MEMBER} done", Share(IMAGE, MEMBER, "done", unshare=True)),
        ("admin grants", Admin("grants")),
        (
            f"admin grant <@U123|jane> sharer {IMAGE}",
            Admin("grant", user_id="U123", role=Role.SHARER, image_id=IMAGE),
        ),
        (
            "admin member add m-1 QA account",
            Admin("member add", member_id="m-1", name="QA account"),
        ),
        ("admin member remove m-1", Admin("member remove", member_id="m-1")),
    ],
)
def test_what_each_command_means(text: str, expected: commands.Command) -> None:
    assert commands.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (IMAGE, "member_missing"),
        ("frobnicate", "unknown_command"),
        (f"not-a-uuid {MEMBER}", "image_id_invalid"),
        (f"{IMAGE} {'a' * 65}", "member_id_too_long"),
        (f"{IMAGE} bad_member", "member_id_invalid"),
        (f"{IMAGE} m\u0435mber", "member_id_not_ascii"),  # a Cyrillic e
        (f"{IMAGE[:-1]}\u0431 {MEMBER}", "image_id_not_ascii"),
        (f"{IMAGE} {MEMBER} {'x' * 301}", "reason_too_long"),
        (f"{IMAGE} {MEMBER} QA\u200brun", "reason_invisible"),
        (f"{IMAGE} {MEMBER} \u202eevil", "reason_invisible"),
        (f"list {IMAGE} extra", "extra_arguments"),
        ("list", "missing_arguments"),
        ("x" * 1001, "too_long"),
        ("admin", "admin_usage"),
        ("admin grant jane sharer", "user_invalid"),
        ("admin grant <@U123> king", "role_invalid"),
        ("admin oncall add <@U123> yesterday tomorrow", "time_invalid"),
        ("admin oncall add <@U123> 2026-12-02T00:00Z 2026-12-01T00:00Z", "window_backwards"),
        (f"admin member add m-1 {'n' * 81}", "name_too_long"),
        ("admin member add m-1 QA\u200baccount", "name_invisible"),
        ("admin member add m-1 \u202eevil", "name_invisible"),
        ("admin grant U0LOWER sharer", "user_bare"),
        ("admin grant USLACKBOT sharer", "user_bare"),
        ("admin oncall remove <@U123>", "oncall_remove_which"),
    ],
)
def test_each_bad_input_names_its_problem(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(text)
    assert caught.value.problem == problem


@given(image_ids, member_ids, reasons)
def test_any_valid_share_reads_back_exactly(image: str, member: str, words: list[str]) -> None:
    parsed = commands.parse(" ".join([image, member, *words]))
    assert parsed == Share(image, member, " ".join(words))


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_with_a_known_problem(text: str) -> None:
    try:
        parsed = commands.parse(text)
    except CommandError as error:
        assert error.problem
        return
    if isinstance(parsed, Share):
        # Whatever gets through is safe to put in the cloud API's URLs.
        assert commands.IMAGE_ID.fullmatch(parsed.image_id)
        assert commands.MEMBER_ID.fullmatch(parsed.member_id)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_a_time_without_an_offset_is_utc(moment: datetime) -> None:
    assert commands.moment(moment.isoformat()) == moment.replace(tzinfo=UTC)


def test_a_time_keeps_the_offset_it_was_given() -> None:
    seoul = timezone(timedelta(hours=9))
    assert commands.moment("2026-12-01T09:00+09:00") == datetime(2026, 12, 1, 9, tzinfo=seoul)


# -- spaces that are not separators, a second --for, emoji and TABs in free text ----------


@pytest.mark.parametrize(
    ("space", "named"),
    [
        ("\u00a0", "U+00A0 NO-BREAK SPACE"),
        ("\u2003", "U+2003 EM SPACE"),
        ("\u3000", "U+3000 IDEOGRAPHIC SPACE"),
        ("\u2028", "U+2028 LINE SEPARATOR"),
        ("\x1c", "U+001C INFORMATION SEPARATOR FOUR"),
        ("\x85", "U+0085 NEXT LINE"),
    ],
)
@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (f"{IMAGE} ab{{space}}cd", "member_id_space"),
        (f"{IMAGE} ab{{space}}cd --for 7d because", "member_id_space"),
        (f"unshare {IMAGE} ab{{space}}cd", "member_id_space"),
        (f"{IMAGE[:8]}{{space}}{IMAGE[8:]} {MEMBER}", "image_id_space"),
        (f"{IMAGE}{{space}}{MEMBER}", "image_id_space"),
        (f"list {IMAGE}{{space}}x", "image_id_space"),
        ("admin member add ab{space}cd QA account", "member_id_space"),
    ],
)
def test_an_id_with_a_space_inside_is_refused_naming_the_character(
    template: str, problem: str, space: str, named: str
) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(template.format(space=space))
    assert caught.value.problem == problem
    assert caught.value.values["character"] == named


def test_spaces_of_any_kind_around_the_command_are_only_spaces() -> None:
    assert commands.parse(f"\u00a0{IMAGE}\t{MEMBER}\u3000") == Share(IMAGE, MEMBER, "")


@pytest.mark.parametrize(
    "text",
    [
        f"{IMAGE} {MEMBER} --for 7d --for 1d",
        f"{IMAGE} {MEMBER} --for=7d --FOR=1d",
        f"{IMAGE} {MEMBER} --for 7d nightly build --for 1d",
    ],
)
def test_a_second_for_is_refused(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(text)
    assert caught.value.problem == "duration_twice"


@pytest.mark.parametrize(
    "text", [f"unshare {IMAGE} {MEMBER} --for 1d", f"unshare {IMAGE} {MEMBER} --FOR=7d x"]
)
def test_an_unshare_with_a_duration_is_refused(text: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(text)
    assert caught.value.problem == "unshare_duration"


def test_words_like_for_stay_in_the_reason() -> None:
    parsed = commands.parse(f"{IMAGE} {MEMBER} --for 7d --format check")
    assert isinstance(parsed, Share) and parsed.reason == "--format check"


@pytest.mark.parametrize(
    "reason",
    [
        "family trip 👨\u200d👩\u200d👧",
        "on fire ❤\ufe0f\u200d🔥",
        "pride 🏳\ufe0f\u200d🌈",
        "dev 👩🏽\u200d💻 laptop",
    ],
)
def test_an_emoji_built_with_a_zero_width_joiner_is_a_reason(reason: str) -> None:
    assert commands.parse(f"{IMAGE} {MEMBER} {reason}") == Share(IMAGE, MEMBER, reason)
    assert commands.name(reason) == reason


@pytest.mark.parametrize(
    "reason",
    [
        "nightly\tbuild",
        "nightly\nbuild",
        "nightly\u2028build",
        "a\u200db",  # a joiner between letters hides nothing but is no emoji
        "👨\u200d",  # a joiner at the end joins nothing
        "\u200d👩",
        "ok\u200b👩",
    ],
)
def test_a_tab_or_a_stray_joiner_in_the_reason_is_refused(reason: str) -> None:
    with pytest.raises(CommandError) as caught:
        commands.parse(f"{IMAGE} {MEMBER} {reason}")
    assert caught.value.problem == "reason_invisible"
    with pytest.raises(CommandError):
        commands.name(reason)
