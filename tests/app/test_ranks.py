"""Rank values and path positions from untrusted text."""

from __future__ import annotations

import pytest

from app.ranks import parse_position, parse_rank


@pytest.mark.parametrize("k", [1, 3, 5, 12])
def test_every_rank_one_to_k_accepted(k):
    assert [parse_rank(str(r), k) for r in range(1, k + 1)] == list(range(1, k + 1))


@pytest.mark.parametrize(
    "value",
    [
        "", "0", "6", "-1", "+1", " 1", "1 ", "1\n", "\n1", "01", "1.0", "1e0", "1_0", "0x1", "١", "１", "¹", "𝟏",
        "1\x00", "\x00", "one", "9" * 5000, "NaN", "٣",
    ],
)  # fmt: skip
def test_refused_rank_values(value):
    assert parse_rank(value, 5) is None


def test_rank_needs_a_string_and_a_positive_k():
    assert parse_rank(3, 5) is None  # type: ignore[arg-type]
    assert parse_rank(None, 5) is None  # type: ignore[arg-type]
    assert parse_rank("1", 0) is None
    assert parse_rank("10", 12) == 10 and parse_rank("13", 12) is None


def test_huge_digit_strings_are_not_converted(monkeypatch):
    import app.ranks as ranks

    converted: list[int] = []
    real_int = int

    def spy(value):
        converted.append(len(value))
        return real_int(value)

    monkeypatch.setattr(ranks, "int", spy, raising=False)
    assert parse_rank("7" * 5000, 5) is None and parse_position("7" * 100_000) is None
    assert parse_rank("١", 5) is None and parse_position("１２") is None
    assert converted == []  # refused on the text, never handed to int()
    assert parse_rank("3", 5) == 3 and parse_position("2147483647") == 2**31 - 1
    assert converted == [1, 10]


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("7", 7), ("2147483647", 2**31 - 1)])
def test_positions_accepted(value, expected):
    assert parse_position(value) == expected


@pytest.mark.parametrize(
    "value",
    ["", "2147483648", str(2**63), str(2**64), "99999999999", "-1", "+1", "01", " 1", "1\x00", "١", "３", "1/2", "x"],
)
def test_positions_refused(value):
    assert parse_position(value) is None
