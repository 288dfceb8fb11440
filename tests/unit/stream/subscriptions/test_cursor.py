import base64

import pytest

from stream.subscriptions.cursor import Cursor, CursorError


def test_round_trip_is_url_safe() -> None:
    cursor = Cursor({0: 12, 3: 2**40})
    text = cursor.encode()
    assert "=" not in text and "+" not in text and "/" not in text
    assert Cursor.decode(text) == cursor


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"x": 1}').decode(),
        base64.urlsafe_b64encode(b'{"0": -1}').decode(),
        base64.urlsafe_b64encode(b'{"0": 1.5}').decode(),
        base64.urlsafe_b64encode(b'{"0": true}').decode(),
        "A" * 5000,
    ],
)
def test_malformed_cursors_are_refused(text: str) -> None:
    with pytest.raises(CursorError):
        Cursor.decode(text)


def test_after_merged_covers() -> None:
    start = Cursor({0: 5, 1: 0})
    later = start.after(1, 7)
    assert later == {0: 5, 1: 8}
    assert start == {0: 5, 1: 0}  # cursors are values: after() does not mutate
    assert later.covers(start) and not start.covers(later)
    assert Cursor({0: 9}).merged(later) == {0: 9, 1: 8}
