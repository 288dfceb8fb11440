"""Security on the real services: Kafka TLS and SASL/SCRAM through Settings, InfluxDB
tokens, no raw patient ids or secrets downstream of ingest, no Faust table views.

The TLS tests start a second, separate single-node Kafka (KRaft) with an SSL listener and
a SASL_SSL (SCRAM-SHA-512) listener on free ports, in its own data directory, using the
jars `vitalstream services up` already fetched. Its CA and server certificate are made
for the test with openssl; the SCRAM user is created when the storage is formatted.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from stream.config import Settings
from stream.kafka import client_options, snapshot_topic
from stream.services import kafka as local_kafka
from stream.services import process
from stream.services.errors import ServiceError
from stream.services.health import check_influx, check_kafka
from stream.subscriptions.server import free_port
from tests.integration.harness import (
    Simulation,
    WorkerProcess,
    consume,
    influx_rows,
    worker_env,
)

pytestmark = pytest.mark.integration

SCRAM_USER = "vitalstream-worker"


@dataclass(frozen=True)
class SecureBroker:
    ssl_bootstrap: str
    sasl_bootstrap: str
    ca: Path
    scram_password: str


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=vitalstream-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
             cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.pem",
             cwd=directory)  # fmt: skip
    # Kafka's PEM keystore wants an unencrypted PKCS#8 key followed by the chain.
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-out", "server.pk8",
             cwd=directory)  # fmt: skip
    keystore = directory / "keystore.pem"
    keystore.write_text(
        (directory / "server.pk8").read_text() + (directory / "server.pem").read_text()
    )
    return directory / "ca.pem", keystore, directory / "server.pem"


def _properties(home: Path, ports: dict[str, int], ca: Path, keystore: Path) -> str:
    ssl, sasl, controller = ports["ssl"], ports["sasl"], ports["controller"]
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": f"SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "SSL",
        "listener.security.protocol.map": "SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
        "ssl.endpoint.identification.algorithm": "",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "log.dirs": str(home / "data"),
        "num.partitions": "2",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


@pytest.fixture(scope="module")
def secure_broker(services: Settings, tmp_path_factory) -> Iterator[SecureBroker]:
    """A second Kafka with SSL and SASL_SSL (SCRAM) listeners, stopped after the module."""
    home = tmp_path_factory.mktemp("secure-kafka")
    ca, keystore, _ = make_certificates(home)
    ports = {"ssl": free_port(), "sasl": free_port(), "controller": free_port()}
    config = home / "server.properties"
    config.write_text(_properties(home, ports, ca, keystore))
    libs = local_kafka.ensure_jars(services)
    log4j = home / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=WARN, out\nlog4j.appender.out=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    java = [shutil.which("java") or "java", "-Xmx256m", "-XX:+UseSerialGC",
            "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{log4j}",
            "-cp", f"{libs}/*"]  # fmt: skip
    password = secrets.token_urlsafe(16)
    formatted = subprocess.run(
        [*java, local_kafka.STORAGE_TOOL, "format", "-t", "vs-tls-test-cluster-00",
         "-c", str(config), "--add-scram",
         f"SCRAM-SHA-512=[name={SCRAM_USER},password={password}]"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    pid_file = home / "kafka.pid"
    process.start_detached(
        [*java, f"-Dkafka.logs.dir={home}/logs", local_kafka.MAIN_CLASS, str(config)],
        pid_file, home / "stdout.log", cwd=home,
    )  # fmt: skip
    try:
        process.wait_until(
            lambda: process.port_open("127.0.0.1", ports["ssl"]) or None, 90, "TLS Kafka",
            alive=lambda: process.running_pid(pid_file, str(config)) is not None,
        )  # fmt: skip
        yield SecureBroker(f"127.0.0.1:{ports['ssl']}", f"127.0.0.1:{ports['sasl']}", ca, password)
    finally:
        process.stop(pid_file, str(config), timeout_s=20)


def tls_settings(base: Settings, broker: SecureBroker, **kafka: object) -> Settings:
    update = {"bootstrap": broker.ssl_bootstrap, "security_protocol": "SSL",
              "ssl_cafile": broker.ca, "request_timeout_s": 10.0} | kafka  # fmt: skip
    return base.model_copy(update={"kafka": base.kafka.model_copy(update=update)})


def scram_settings(base: Settings, broker: SecureBroker, password: str) -> Settings:
    from pydantic import SecretStr

    return tls_settings(
        base, broker, bootstrap=broker.sasl_bootstrap, security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512", sasl_username=SCRAM_USER,
        sasl_password=SecretStr(password),
    )  # fmt: skip


def test_tls_round_trip_through_settings(services, secure_broker):
    """The one builder of client options speaks TLS for kafka-python and aiokafka alike."""
    settings = tls_settings(services, secure_broker)
    assert client_options(settings.kafka)["ssl_cafile"] == str(secure_broker.ca)
    health = process.wait_until(lambda: check_kafka(settings, timeout_s=10), 60, "TLS round trip")
    assert health.bootstrap == secure_broker.ssl_bootstrap
    producer = KafkaProducer(**client_options(settings.kafka), acks="all")
    sent = producer.send("tls-check", b"over tls").get(timeout=20)
    producer.close()
    assert sent.offset >= 0


def test_plaintext_and_untrusted_clients_are_refused(services, secure_broker):
    settings = tls_settings(services, secure_broker)
    process.wait_until(lambda: check_kafka(settings, timeout_s=10), 60, "TLS round trip")
    plaintext = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(
            update={"security_protocol": "PLAINTEXT", "ssl_cafile": None})}
    )  # fmt: skip
    with pytest.raises(ServiceError):
        check_kafka(plaintext, timeout_s=5)
    # TLS without the test CA: the server certificate is not trusted.
    untrusted = plaintext.model_copy(
        update={"kafka": plaintext.kafka.model_copy(update={"security_protocol": "SSL"})}
    )
    with pytest.raises((ServiceError, Exception)):
        KafkaAdminClient(**client_options(untrusted.kafka)).list_topics()


def test_scram_user_authenticates_and_a_wrong_password_does_not(services, secure_broker, caplog):
    good = scram_settings(services, secure_broker, secure_broker.scram_password)
    process.wait_until(lambda: check_kafka(good, timeout_s=10), 60, "SCRAM round trip")
    assert client_options(good.kafka, "faust")["broker_credentials"].mechanism.value == (
        "SCRAM-SHA-512"
    )
    wrong = scram_settings(services, secure_broker, "wrong").kafka
    with caplog.at_level("WARNING"), pytest.raises(Exception):  # noqa: B017 - timeout or auth
        KafkaAdminClient(**client_options(wrong)).list_topics()
    # The broker either answers the SASL exchange with a failure or drops the connection.
    assert "Authentication failed" in caplog.text or "socket disconnected" in caplog.text


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_worker_runs_over_tls(protocol, services, secure_broker, isolated_settings, tmp_path):
    """A real worker (Faust/aiokafka, options from stream.kafka) consumes and produces over
    TLS, and over TLS with SCRAM: a malformed frame comes back as a dead letter."""
    if protocol == "SSL":
        settings = tls_settings(isolated_settings, secure_broker)
        auth = {}
    else:
        settings = scram_settings(isolated_settings, secure_broker, secure_broker.scram_password)
        auth = {
            "VITALSTREAM_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
            "VITALSTREAM_KAFKA__SASL_USERNAME": SCRAM_USER,
            "VITALSTREAM_KAFKA__SASL_PASSWORD": secure_broker.scram_password,
        }
    env = (
        worker_env(settings)
        | auth
        | {
            "VITALSTREAM_KAFKA__SECURITY_PROTOCOL": protocol,
            "VITALSTREAM_KAFKA__SSL_CAFILE": str(secure_broker.ca),
        }
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path / "state")
    worker.start()
    try:
        worker.wait_ready(120)
        producer = KafkaProducer(**client_options(settings.kafka), acks="all")
        producer.send(settings.topics.frames, key=b"dev-tls", value=b'{"v": 1, "seq": ')
        producer.flush()
        producer.close()
        letters = consume(settings, settings.topics.deadletter, bool, 60)
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert letters, log[-3000:]
    assert secure_broker.scram_password not in log


def test_a_wrong_influx_token_is_refused(services):
    from pydantic import SecretStr

    from stream.config import load_settings

    # Built fresh: a model_copy would keep the cached `influx_token` of the original.
    wrong = load_settings(
        influx=services.influx.model_copy(update={"token": SecretStr(secrets.token_urlsafe(32))}),
        services=services.services,
    )
    assert wrong.influx_token != services.influx_token
    with pytest.raises(ServiceError, match="rejected the token"):
        check_influx(wrong)
    response = httpx.post(
        f"{services.influx.url}/api/v2/write",
        params={"org": services.influx.org, "bucket": services.influx.bucket},
        headers={"Authorization": "Token not-a-token"},
        content=b"intrusion,x=1 v=1",
    )
    assert response.status_code == 401


SCENARIO = """
name: privacy
ward: ward-privacy
patients:
  - id: MRN-SECRET-7781
    events: [{event: tachycardia, start: 15, end: 50, severity: 0.8}]
  - id: MRN-SECRET-7782
    events: [{event: fall, start: 20, end: 45, severity: 0.8}]
  - id: MRN-SECRET-7783
"""


def test_no_raw_ids_or_secrets_downstream_of_ingest(
    isolated_settings, influx_client, kafka_admin, tmp_path
):
    """After a scenario: worker and simulator logs, the alerts and dead-letter topics and
    the device-snapshot topic, and all InfluxDB tag values hold no raw patient id, no
    pseudonym key and no InfluxDB token. Also: the worker listens on one loopback port
    (Prometheus) and serves no Faust /table views."""
    settings = isolated_settings
    env = worker_env(settings)
    scenario = tmp_path / "privacy.yaml"
    scenario.write_text(SCENARIO)
    sim = Simulation(scenario, 3, 60, float(int(time.time()) - 600))
    worker = WorkerProcess(env, tmp_path / "worker.log", tmp_path / "state")
    worker.start()
    try:
        worker.wait_ready()
        simulated = subprocess.run(
            sim.argv(10, tmp_path / "labels.jsonl"), env=env, capture_output=True, timeout=120
        )
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        # A malformed frame and an enrolment-shaped frame carrying a raw id: dead letters.
        producer = KafkaProducer(**client_options(settings.kafka), acks="all")
        producer.send(
            settings.topics.frames, key=b"dev-x", value=b'{"patient_id": "MRN-SECRET-7781"'
        )
        producer.flush()
        producer.close()
        alerts = consume(settings, settings.topics.alerts, lambda v: len(v) >= 2, 60)
        assert alerts, "the scenario raised no alert to inspect"
        time.sleep(3)
        ports = _listening_ports(worker.pid)
        metrics_port = int(re.findall(r"metrics on http://127\.0\.0\.1:(\d+)",
                                      (tmp_path / "worker.log").read_text())[-1])  # fmt: skip
        table_view = httpx.get(f"http://127.0.0.1:{metrics_port}/table", timeout=5)
    finally:
        worker.stop()
    assert ports == {("127.0.0.1", metrics_port)}, ports
    assert "alert_state" not in table_view.text and "contexts" not in table_view.text

    forbidden = {
        "raw patient id": re.compile(rb"MRN-SECRET-\d+"),
        "pseudonym key": re.compile(re.escape(settings.pseudonym_secret)),
        "influx token": re.compile(re.escape((settings.influx_token or "x" * 40).encode())),
    }
    haystacks: dict[str, bytes] = {
        "worker log": (tmp_path / "worker.log").read_bytes(),
        "simulator output": simulated.stdout + simulated.stderr,
        "alerts topic": b"\n".join(alerts + consume(settings, settings.topics.alerts)),
    }
    from stream.records import DeadLetter

    letters = [DeadLetter.from_json(v) for v in consume(settings, settings.topics.deadletter)]
    assert letters, "the malformed frame was dead-lettered"
    haystacks["dead-letter reasons"] = "\n".join(d.reason for d in letters).encode()
    state = snapshot_topic(settings)
    assert state in kafka_admin.list_topics(), "the worker snapshots device state to a topic"
    snapshots = consume(settings, state, timeout_s=3)
    assert snapshots, "no device snapshot was written"
    haystacks[state] = b"\n".join(v or b"" for v in snapshots)
    tags = influx_rows(
        settings, influx_client,
        '|> keep(columns: ["ward", "patient", "device", "_measurement"]) |> group() '
        '|> unique(column: "patient")',
    )  # fmt: skip
    haystacks["influx tags"] = repr([r.values for r in tags]).encode()
    assert {(r.values.get("patient") or "p-")[:2] for r in tags} == {"p-"}
    for where, content in haystacks.items():
        for what, pattern in forbidden.items():
            assert not pattern.search(content), f"{what} found in {where}"


def _listening_ports(pid: int | None) -> set[tuple[str, int]]:
    assert pid is not None
    proc = psutil.Process(pid)
    return {
        (c.laddr.ip, c.laddr.port)
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
