"""stream.kafka: one builder gives every client library the same cluster and auth."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from stream.config import load_settings
from stream.kafka import client_options

SCRAM = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "svc",
    "sasl_password": "pw",
}


def test_plaintext_carries_no_login_and_splits_the_bootstrap_list() -> None:
    kafka = load_settings(kafka={"bootstrap": "a:9092, b:9093,"}).kafka
    for client in ("kafka-python", "aiokafka"):
        options = client_options(kafka, client)
        assert options["bootstrap_servers"] == ["a:9092", "b:9093"]
        assert options["security_protocol"] == "PLAINTEXT"
        assert not {"sasl_mechanism", "ssl_context", "ssl_cafile"} & set(options)
    assert client_options(kafka, "faust") == {
        "broker": ["kafka://a:9092", "kafka://b:9093"],
        "broker_credentials": None,
    }


@pytest.mark.parametrize("client", ["kafka-python", "aiokafka"])
def test_the_sasl_login_reaches_both_python_clients(client: str) -> None:
    options = client_options(load_settings(kafka=SCRAM).kafka, client)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert options["request_timeout_ms"] == 30_000


def test_faust_gets_scram_credentials() -> None:
    credentials = client_options(load_settings(kafka=SCRAM).kafka, "faust")["broker_credentials"]
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.username == "svc"


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A CA bundle ssl can load: the system's own default CA file."""
    paths = ssl.get_default_verify_paths()
    if not paths.cafile:
        pytest.fail("this machine has no default CA file for the TLS options test")
    return Path(paths.cafile)


def test_tls_is_file_paths_for_kafka_python_and_a_context_for_the_others(ca_file: Path) -> None:
    kafka = load_settings(kafka={"security_protocol": "SSL", "ssl_cafile": str(ca_file)}).kafka
    assert client_options(kafka)["ssl_cafile"] == str(ca_file)
    assert isinstance(client_options(kafka, "aiokafka")["ssl_context"], ssl.SSLContext)
    credentials = client_options(kafka, "faust")["broker_credentials"]
    assert isinstance(credentials.context, ssl.SSLContext)
