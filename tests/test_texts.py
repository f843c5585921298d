"""The text catalogs: every language says everything, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.slack import texts

CODE = [*Path("bot").rglob("*.py"), *Path("handlers").rglob("*.py")]


@pytest.fixture(autouse=True)
def _in_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent.parent)


def test_there_are_english_and_korean_catalogs() -> None:
    assert set(texts.languages()) >= {"en", "ko"}


@pytest.mark.parametrize("language", [lang for lang in texts.languages() if lang != "en"])
def test_every_language_has_the_same_keys_and_placeholders(language: str) -> None:
    english = texts.catalog("en").placeholders()
    other = texts.catalog(language).placeholders()
    assert sorted(set(english) - set(other)) == [], "keys missing"
    assert sorted(set(other) - set(english)) == [], "keys English does not have"
    differ = {k: (english[k], other[k]) for k in english if english[k] != other[k]}
    assert differ == {}


def test_every_key_the_code_says_is_in_the_catalog() -> None:
    keys = set(texts.catalog("en").texts)
    said: set[str] = set()
    for path in CODE:
        said |= set(re.findall(r"\bsay\(\s*[\w.]+,\s*\"(\w+)\"", path.read_text()))
    assert said, "the scan found no say() calls at all"
    assert sorted(said - keys) == []


def test_a_new_language_is_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for source in texts.CATALOGS.glob("*.toml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    japanese = (tmp_path / "en.toml").read_text(encoding="utf-8")
    japanese = japanese.replace('name = "English"', 'name = "Japanese"').replace(
        'approve = "Approve"', 'approve = "承認"'
    )
    (tmp_path / "ja.toml").write_text(japanese, encoding="utf-8")
    monkeypatch.setattr(texts, "CATALOGS", tmp_path)
    texts.catalogs.cache_clear()
    try:
        assert "ja" in texts.languages()
        assert texts.say("ja", "approve") == "承認"
        assert texts.language_of("ja-JP") == "ja"
    finally:
        texts.catalogs.cache_clear()


def test_an_unknown_language_falls_back_to_english() -> None:
    assert texts.say("xx", "approve") == texts.say("en", "approve") == "Approve"
    assert texts.state_word("xx", "queued") == "queued"


@pytest.mark.parametrize(
    ("language", "kind", "words"),
    [
        ("en", "image_not_found", "image not found"),
        ("ko", "image_not_found", "이미지 없음"),
        ("en", "something_new", "unexpected error"),
    ],
)
def test_failure_words(language: str, kind: str, words: str) -> None:
    assert texts.failure_word(language, kind) == words
