"""Reading an upstream's Retry-After, and saying it back the way OpenAI and its clients do."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from respgate.providers.timing import retry_after, retry_after_headers, try_again_in


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 1.5 "}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),  # the finer one wins, as in the SDK
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_in_seconds_or_milliseconds(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    wait = retry_after({"retry-after": formatdate(time.time() + 120, usegmt=True)})
    assert wait is not None and 100 < wait <= 120
    assert retry_after({"retry-after": formatdate(time.time() - 60, usegmt=True)}) == 0.0


def test_headers_and_wording_for_the_client() -> None:
    assert retry_after_headers({"retry-after": "1.2"}, 1.2) == {"Retry-After": "2"}
    assert retry_after_headers({"retry-after-ms": "1500"}, 1.5) == {"Retry-After": "2", "retry-after-ms": "1500"}
    assert [try_again_in(s) for s in (1.5, 0.446, 20, 6.596, 0.0001, 3600)] == [
        "1.5s",
        "446ms",
        "20s",
        "6.596s",
        "1ms",
        "3600s",
    ]
