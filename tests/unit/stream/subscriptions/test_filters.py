import pytest

from stream.subscriptions.filters import FilterError, parse_filter


def test_repeatable_filters_and_priority(alert_factory) -> None:
    f = parse_filter([("ward", "A"), ("ward", "B"), ("kind", "brady"), ("min_priority", "medium")])
    assert f.wards == {"A", "B"}
    assert f.matches(alert_factory(ward="B", kind="brady", priority="high"))
    assert not f.matches(alert_factory(ward="C", kind="brady"))
    assert not f.matches(alert_factory(ward="A", kind="tachycardia"))
    assert not f.matches(alert_factory(ward="A", kind="brady", priority="low"))


def test_cursor_is_not_a_filter() -> None:
    assert parse_filter([("cursor", "abc")]).wards == frozenset()


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        ([("colour", "red")], "unknown_filter", "'colour'"),
        ([("min_priority", "urgent")], "bad_filter", "'urgent'"),
        ([("min_priority", "low"), ("min_priority", "high")], "bad_filter", "once"),
        ([("ward", "")], "bad_filter", "ward"),
        ([("token", "secret")], "token_in_query", "Authorization header"),
    ],
)
def test_bad_filters_say_what_is_wrong(params, code: str, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(params)
    assert caught.value.code == code
    assert fragment in caught.value.detail
