import stat

import pytest

from stream.subscriptions.tokens import AuthError, TokenStore, bearer_token, hash_token


def test_tokens_are_stored_hashed_and_private(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, _ = store.issue(subject="nurse-1", wards=["A"], can_ack=True, ttl_s=60)
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text
    assert hash_token(token) in text
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600
    assert TokenStore(tmp_path / "tokens.json").authenticate(token).subject == "nurse-1"


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "missing_token"), ("", "missing_token"), ("vs_nope", "unknown_token")],
)
def test_missing_or_unknown_token_is_401(tmp_path, token, code: str) -> None:
    with pytest.raises(AuthError) as caught:
        TokenStore(tmp_path / "t.json").authenticate(token)
    assert (caught.value.status, caught.value.code) == (401, code)


def test_expired_and_revoked(tmp_path) -> None:
    store = TokenStore(tmp_path / "t.json")
    token, record = store.issue(subject="x", wards="*", ttl_s=10, now=1000.0)
    assert store.authenticate(token, now=1005.0).id == record.id
    with pytest.raises(AuthError) as caught:
        store.authenticate(token, now=1010.0)
    assert caught.value.code == "expired_token"
    assert store.still_valid(record, now=1005.0)
    assert store.revoke(record.id)
    assert not store.still_valid(record, now=1005.0)
    assert not store.revoke(record.id)


def test_scope(tmp_path, alert_factory) -> None:
    store = TokenStore(tmp_path / "t.json")
    _, ward_a = store.issue(subject="a", wards=["A"], patients=["p-1"])
    assert ward_a.allows(alert_factory(ward="A", patient="p-1"))
    assert not ward_a.allows(alert_factory(ward="B", patient="p-1"))
    assert not ward_a.allows(alert_factory(ward="A", patient="p-2"))
    ward_a.check_filters(frozenset({"A"}), frozenset({"p-1"}))
    with pytest.raises(AuthError) as caught:
        ward_a.check_filters(frozenset({"A", "B"}), frozenset())
    assert caught.value.status == 403 and "B" in caught.value.detail
    with pytest.raises(AuthError):
        ward_a.check_filters(frozenset(), frozenset({"p-2"}))


def test_issue_refuses_empty_scope(tmp_path) -> None:
    with pytest.raises(ValueError, match="ward"):
        TokenStore(tmp_path / "t.json").issue(subject="x", wards=[])


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
