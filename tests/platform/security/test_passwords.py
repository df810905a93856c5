"""Password policy (pure logic)."""

from __future__ import annotations

import pytest

from keel.platform.security.passwords import common_passwords, password_problem

EMAIL = "grace.hopper@example.com"


def test_the_shipped_common_list_is_large() -> None:
    assert len(common_passwords()) >= 10_000
    assert "password" in common_passwords()


@pytest.mark.parametrize(
    "password",
    [
        "Correct-Horse-Battery-42",
        "my dog likes long walks",
        "zyxwvutsrqpo-but-not-only",
        "Tr0ub4dor&3-extended",
        "1234567890ab",  # a sequence and then not
        # Digits that are not ASCII ("¹", "²", "②"): str.isdigit() is true, int() refuses.
        "x¹²³⁴⁵⁶⁷⁸⁹y-strong",
        "②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬",
    ],
)
def test_reasonable_passwords_pass(password: str) -> None:
    assert password_problem(password, EMAIL) is None


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "between"),
        ("x" * 129, "between"),
        ("grace.hopper@example.com", "e-mail"),
        ("GRACE.HOPPER", "e-mail"),
        ("aaaaaaaaaaaa", "repeated"),
        ("abababababab", "repeated"),
        ("abcabcabcabc", "repeated"),
        ("aaaaaaaaaaab", "repeated"),
        ("123456789012", "sequence"),
        ("987654321098", "sequence"),
        ("abcdefghijklmnop", "sequence"),
        ("ZYXWVUTSRQPO", "sequence"),
        ("1q2w3e4r5t6y", "common"),
        ("PASSWORD1234", "common"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    problem = password_problem(password, "grace.hopper@example.com" if "@" in password else EMAIL)
    assert problem is not None
    assert reason in problem
