"""The password form's rate limit: a growing wait after wrong passwords, per browser session and per client
address, logged; the form refuses attempts inside the wait. A fake clock, so no test waits or times anything."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import auth
from core.auth import LoginThrottle, hash_password

APP = str(Path(__file__).resolve().parents[1] / "app.py")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_wait_grows_with_each_wrong_password_up_to_a_cap() -> None:
    throttle = LoginThrottle(free_attempts=3, base_delay_s=1.0, max_delay_s=60.0)
    assert [throttle.delay(n) for n in range(10)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60]


def test_waits_count_per_session_and_per_address(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock=clock)
    caplog.set_level(logging.WARNING, logger="core.auth")
    for _ in range(3):
        throttle.failed("session a", "address 10.0.0.7")
    assert throttle.wait_left("session a") == 1.0
    # A new browser session from the same address waits too: opening tabs does not reset the count.
    assert throttle.wait_left("session b", "address 10.0.0.7") == 1.0
    assert throttle.wait_left("session c", "address 10.0.0.8") == 0.0
    clock.now += 0.5
    assert throttle.wait_left("session a") == 0.5
    clock.now += 0.5
    assert throttle.wait_left("session a", "address 10.0.0.7") == 0.0
    assert throttle.failed("session b", "address 10.0.0.7") == 2.0  # the address's 4th in a row
    assert "address 10.0.0.7" in caplog.text and "4 in a row" in caplog.text
    throttle.succeeded("session b", "address 10.0.0.7")
    assert throttle.wait_left("session b", "address 10.0.0.7") == 0.0
    assert throttle.wait_left("session a") == 0.0 and throttle._failures["session a"][0] == 3  # kept till it signs in


def test_memory_stays_bounded_under_a_flood_of_addresses() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(max_keys=100, clock=clock)
    for i in range(1_000):
        clock.now += 1
        throttle.failed(f"address 10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) <= 100


def test_the_form_refuses_attempts_before_the_wait_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(auth, "LOGIN_THROTTLE", LoginThrottle(clock=clock))
    monkeypatch.setenv("PROTOLAB_PASSWORD_HASH", hash_password("open sesame"))
    at = AppTest.from_file(APP, default_timeout=60).run()

    def sign_in(password: str) -> str:
        at.text_input(key="login_password").input(password)
        at.button[0].click().run()
        assert not at.exception, at.exception
        return " ".join(e.value for e in at.error)

    assert sign_in("wrong") == "Wrong password."
    assert sign_in("wrong") == "Wrong password."
    assert sign_in("wrong") == "Wrong password. Wait 1 s before the next try."
    # The right password inside the wait is refused unchecked.
    assert sign_in("open sesame") == "Too many wrong passwords: try again in 1 s."
    assert not at.metric
    clock.now += 1.0
    assert sign_in("open sesame") == ""
    assert at.metric  # Home, signed in
