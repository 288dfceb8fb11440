import hashlib
import hmac

from stream.subscriptions.webhooks import RetryPolicy, sign, verify


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"alert": 1}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={expected}"
    assert verify(b"k", body, sign(b"k", body))
    assert not verify(b"other", body, sign(b"k", body))
    assert not verify(b"k", body + b" ", sign(b"k", body))


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(attempts=6, first_delay_s=1.0, factor=2.0, max_delay_s=5.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
