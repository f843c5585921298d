"""The form's parts on their own: reading fields by the command's rules, labels, notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.sharing import commands
from bot.sharing.durations import ShareDurations, parse_duration
from bot.sharing.errors import CommandError, FieldsInvalid
from bot.sharing.fields import ShareFields, read_share
from bot.sharing.values import StoredImage
from bot.slack.form import ShareForm, duration_label, image_label, image_list_note
from tests.harness import IMAGE, MEMBER

NO_LIMITS = ShareDurations(offered=(parse_duration("1d"),))
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


IMAGES = st.one_of(
    st.just(IMAGE), st.just(IMAGE.upper()), st.uuids().map(str), st.text(max_size=50)
)
MEMBERS = st.one_of(
    st.just(MEMBER), st.from_regex(r"[A-Za-z0-9-]{1,66}", fullmatch=True), st.text()
)
REASONS = st.text(max_size=320).filter(lambda text: not text.lstrip().lower().startswith("--for"))


@given(image=IMAGES, member=MEMBERS, reason=REASONS)
def test_the_form_reads_exactly_what_the_command_would(
    image: str, member: str, reason: str
) -> None:
    fields = ShareFields(image=image, member=member, reason=reason, duration="1d")
    try:
        typed: commands.Command | None = commands.parse(f"{image} {member} --for 1d {reason}")
    except CommandError:
        typed = None
    try:
        read = read_share(fields, NO_LIMITS).share
    except FieldsInvalid as error:
        assert set(error.problems) <= {"image", "member", "reason"}
        read = None
    # Whatever the form takes, the typed command takes alike (a field can hold no space
    # the command would split on, so only single-word ids can agree).
    if read is not None and " " not in image.strip() and " " not in member.strip():
        assert typed == read


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(FieldsInvalid) as caught:
        read_share(ShareFields("nope", "no/pe", "x" * 301, "0d"), NO_LIMITS)
    assert {k: e.problem for k, e in caught.value.problems.items()} == {
        "image": "image_id_invalid",
        "member": "member_id_invalid",
        "reason": "reason_too_long",
        "duration": "duration_zero",
    }


@pytest.mark.parametrize(
    ("value", "maximum", "expected"),
    [
        ("7d", None, "7d"),
        ("until_removed", None, None),
        ("12H", "1d", "12h"),
    ],
)
def test_durations_read_by_the_duration_rules(
    value: str, maximum: str | None, expected: str | None
) -> None:
    limits = ShareDurations(maximum=parse_duration(maximum) if maximum else None)
    read = read_share(ShareFields(IMAGE, MEMBER, "", value), limits)
    assert (read.duration.text if read.duration else None) == expected


def test_field_names_match_the_forms_blocks() -> None:
    assert set(ShareForm.field_blocks) == {"image", "member", "duration", "reason"}


@pytest.mark.parametrize(
    ("value", "label"),
    [("1d", "1 day"), ("30m", "30 minutes"), ("2W", "2 weeks"), ("until_removed", "Until removed")],
)
def test_duration_labels(value: str, label: str) -> None:
    assert duration_label("en", value) == label


def test_korean_duration_labels() -> None:
    assert duration_label("ko", "7d") == "7일"


def test_an_image_label_fits_an_option_whatever_its_name() -> None:
    long = StoredImage(id=IMAGE, name="n" * 300, os_distro="d" * 80, scp_os_version="9")
    assert len(image_label(long)) <= 75
    assert image_label(StoredImage(id=IMAGE)) == "70a599e0…"


@pytest.mark.parametrize(
    ("count", "age", "says"),
    [
        (0, None, "haven't read"),
        (0, timedelta(), "was empty"),
        (3, timedelta(seconds=900), ""),
        (3, timedelta(seconds=901), "out of date"),
    ],
)
def test_the_image_list_note(count: int, age: timedelta | None, says: str) -> None:
    note = image_list_note(
        "en",
        count=count,
        refreshed_at=None if age is None else NOW - age,
        now=NOW,
        every=timedelta(seconds=300),
    )
    assert (says in note) if says else note == ""
