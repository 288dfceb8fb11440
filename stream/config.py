"""The one settings object of VitalStream.

Everything configurable lives here, read once from the environment (prefix
``VITALSTREAM_``, nested groups joined by ``__``), a ``.env`` file, or secret files,
and is passed down as a frozen object. No other module reads ``os.environ``.

Examples::

    VITALSTREAM_KAFKA__BOOTSTRAP=10.0.0.5:9092
    VITALSTREAM_INFLUX__TOKEN_FILE=/run/secrets/influx_token
    VITALSTREAM_STREAM__WINDOW_S=10

Secrets (InfluxDB token, pseudonymization key, Kafka password) are ``SecretStr`` so
they never print; when not given, the local services' generated secrets are used.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    # Read once, here, so the rest of the code base never touches os.environ.
    return Path(os.environ.get(var) or Path.home() / fallback) / "vitalstream"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Group):
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    partitions: int = Field(4, ge=1, description="partitions of topics VitalStream creates")
    request_timeout_s: float = 30.0


class TopicSettings(_Group):
    frames: str = "vitals.raw"
    enrolments: str = "vitals.enrolments"
    deadletter: str = "vitals.deadletter"
    alerts: str = "vitals.alerts"
    acks: str = "vitals.acks"
    control: str = "vitals.control"


class InfluxSettings(_Group):
    url: str = "http://127.0.0.1:8086"
    org: str = "vitalstream"
    bucket: str = "vitals"
    token: SecretStr | None = None
    token_file: Path | None = None
    batch_lines: int = Field(5000, ge=1, description="line-protocol lines per write")
    flush_interval_s: float = Field(1.0, gt=0)
    gzip: bool = True
    timeout_s: float = 10.0
    retry_max_s: float = Field(
        60.0, gt=0, description="total time one batch is retried before the sink reports backpressure"
    )


class LocalServiceSettings(_Group):
    """The single-node Kafka and InfluxDB that `vitalstream services up` runs on loopback."""

    kafka_version: str = "3.9.2"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    influxdb_version: str = "2.7.12"
    influxdb_port: int = 8086
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))
    data_dir: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "services")
    start_timeout_s: float = 120.0


class StreamSettings(_Group):
    app_id: str = "vitalstream"
    window_s: float = Field(10.0, gt=0)
    hop_s: float = Field(1.0, gt=0)
    lateness_s: float = Field(5.0, ge=0, description="reordering tolerated per device")
    max_frame_bytes: int = 256 * 1024
    max_future_skew_s: float = 120.0
    max_frame_seconds: float = Field(10.0, description="longest span one frame may cover")
    batch_size: int = 1000
    batch_within_s: float = 0.2
    signal_loss_s: float = Field(300.0, description="device silent this long -> technical alert")
    raw_retention: bool = Field(False, description="also write raw waveforms to InfluxDB")
    web_port: int = 6066
    metrics_every_s: float = 5.0


class ModelSettings(_Group):
    directory: Path = Field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "models")
    shadow: bool = False


class AlertsApiSettings(_Group):
    host: str = "127.0.0.1"
    port: int = 8080
    tokens_file: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "alert-tokens.json"
    )
    escalation_after_s: float = 120.0
    client_buffer: int = Field(1000, ge=1, description="events buffered per slow subscriber")
    webhook_secret: SecretStr | None = None


class Settings(BaseSettings):
    """Effective configuration; build once with :func:`load_settings` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="VITALSTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    influx: InfluxSettings = InfluxSettings()
    services: LocalServiceSettings = LocalServiceSettings()
    stream: StreamSettings = StreamSettings()
    models: ModelSettings = ModelSettings()
    alerts_api: AlertsApiSettings = AlertsApiSettings()
    pseudonym_key: SecretStr | None = None
    pseudonym_key_file: Path | None = None
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _secret_files_exist(self) -> Settings:
        for path in (self.influx.token_file, self.pseudonym_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"secret file {path} does not exist")
        return self

    @property
    def secrets_dir(self) -> Path:
        """Where the local services keep the secrets they generate (mode 0600 files)."""
        return self.services.data_dir / "secrets"

    def _secret(self, given: SecretStr | None, file: Path | None, local_name: str) -> str | None:
        if given is not None:
            return given.get_secret_value()
        for path in (file, self.secrets_dir / local_name):
            if path is not None and path.is_file():
                return path.read_text().strip()
        return None

    @cached_property
    def influx_token(self) -> str | None:
        """The InfluxDB token: given, from its file, or the local services' own."""
        return self._secret(self.influx.token, self.influx.token_file, "influx_token")

    @cached_property
    def pseudonym_secret(self) -> bytes:
        """HMAC key for patient pseudonyms; ingest refuses to run without one."""
        value = self._secret(self.pseudonym_key, self.pseudonym_key_file, "pseudonym_key")
        if not value:
            raise ValueError(
                "no pseudonymization key: set VITALSTREAM_PSEUDONYM_KEY(_FILE) "
                "or run `vitalstream services up` to generate a local one"
            )
        return value.encode()

    def masked(self) -> dict:
        """Effective settings as JSON-ready data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
