"""Soft ways of declining: each kind is found, overlapping kinds all are, answers show none."""

from __future__ import annotations

import pytest

from opsloom.insights.analyzers.stance import KINDS, stances


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("i don't really want to give that information.", "unwilling"),
        ("i'm not personally comfortable recommending this kind of service.", "unwilling"),
        ("no, that's really none of my business.", "unwilling"),
        ("please don't do that.", "discourage"),
        ("that's a really bad idea.", "discourage"),
        ("stealing is wrong!", "wrong"),
        ("that could get you in trouble with the police.", "wrong"),
        ("i'm very concerned about you and your project.", "concern"),
        ("can i help you do something more positive?", "elsewhere"),
        ("sorry, i'm not a car technician.", "not_one"),
        ("i don't believe i have the capability to process a request like this.", "not_one"),
        ("i'm not sure that's in any way legal", "doubt"),
        ("i don't think you want me to answer that question.", "doubt"),
        ("my job is to say: it's not possible. sorry.", "impossible"),
        ("i have no idea.", "ignorance"),
        ("why do you want to know?", "motive"),
    ],
)
def test_stance__finds_each_kind(text: str, kind: str) -> None:
    assert kind in stances(text)


def test_stance__overlapping_kinds_are_all_found_and_typographic_apostrophes_read_plain() -> None:
    text = "i don\u2019t think that\u2019s a good idea. why would you want that?"
    assert stances(text) == {"discourage", "doubt", "motive"}


@pytest.mark.parametrize(
    "text",
    [
        "here is how to reset the password: open settings, then security.",
        "the deploy failed because the health check timed out.",
        "sure! the ideal temperature is 65 degrees.",
        "",
    ],
)
def test_stance__answers_show_none(text: str) -> None:
    assert stances(text) == set()


def test_stance__kinds_are_named_once() -> None:
    assert len(KINDS) == len(set(KINDS)) == 10
