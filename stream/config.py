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
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="replicas of the topics VitalStream creates (default: the cluster's "
        "brokers, up to 3; with 3, min.insync.replicas is 2)",
    )
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
        60.0,
        gt=0,
        description="total time one batch is retried before it goes to the local spool",
    )
    spool_dir: Path | None = Field(
        None,
        description="durable local overflow while InfluxDB is down "
        "(default: <data dir>/spool/<app id>); consumption and alerts continue meanwhile",
    )
    spool_max_mb: float = Field(
        1024.0, ge=0, description="spool size at which the sink blocks (backpressure); 0 = off"
    )


class LocalServiceSettings(_Group):
    """The Kafka (one broker or a cluster) and InfluxDB `vitalstream services up` runs on
    loopback."""

    kafka_version: str = "3.9.2"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_brokers: int = Field(
        1, ge=1, le=9, description="brokers `services up` runs (3: a replicated cluster)"
    )
    kafka_heap: str = "768m"
    influxdb_version: str = "2.7.12"
    influxdb_port: int = 8086
    cache_dir: Path = Field(default_factory=lambda: _xdg("XDG_CACHE_HOME", ".cache"))
    data_dir: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "services"
    )
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
    # The write budget: vitals (device values and the displayed heart rates) and signal
    # quality are written every second; the window features, model scores and NEWS2 of a
    # device at most this often (and with every window that raises an alert event, whose
    # features adjudicated alarms are joined to). Overlapping 10 s windows a second apart
    # say little the previous one did not; their fields were three quarters of the writes.
    features_every_s: float = Field(
        10.0, gt=0, description="window features, model scores and NEWS2 written this often"
    )
    web_port: int = 6066
    metrics_every_s: float = 5.0
    # Consumer-group liveness. A worker that dies without leaving the group (SIGKILL, power
    # loss, a frozen VM) is noticed when its session times out; until then its partitions,
    # and their patients, go unprocessed. Faust's default is 60 s. Heartbeats come from the
    # consumer's own thread, so a busy event loop does not miss them; a third of the
    # timeout between them, as Kafka advises.
    session_timeout_s: float = Field(8.0, ge=6.0, description="worker declared dead after")
    heartbeat_s: float = Field(2.0, gt=0)
    # How often durable progress is committed: what a new owner replays, and how soon
    # the group's committed offsets show a failover is over (Faust's default 2.8 s).
    commit_interval_s: float = Field(1.0, gt=0)
    # How often the devices' detector and model state is checkpointed to the snapshot topic
    # (and the records it covers become committable): exporting and publishing every
    # device's few KB with every batch would cost more than analysing its second. A new
    # owner replays at most this much from the commit (alerts again under the same
    # alert_id, which consumers dedupe on; points overwrite themselves).
    checkpoint_s: float = Field(5.0, gt=0, description="state snapshot and commit interval")
    # A worker that restores a device from its snapshot (a takeover, a restart) starts
    # with empty ring buffers: its first window would come window_s after the first frame
    # it reads, with no alarm meanwhile. It refills them first from this much of the
    # partition's frames before the commit it resumes at (by their Kafka timestamps),
    # into the rings only: the snapshot's detectors hold those samples and its windows
    # up to the snapshot's were judged and written. The window plus the lateness the
    # rings hold. 0: no refill.
    replay_margin_s: float = Field(
        15.0, ge=0, description="frames before the commit a restored device's rings refill from"
    )
    rebalance_timeout_s: float = Field(
        20.0, gt=0, description="how long a rebalance waits for members to rejoin"
    )


class ModelSettings(_Group):
    directory: Path = Field(
        default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share") / "models"
    )
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


class AlertTiming(_Group):
    """How one alert kind moves through its lifecycle (stream/lifecycle.py)."""

    onset_s: float = Field(ge=0, description="condition must persist this long before 'triggered'")
    repeat_s: float = Field(gt=0, description="'repeated' this often while the alert stays active")
    resolve_s: float = Field(ge=0, description="condition gone (past hysteresis) this long")
    onset_gap_s: float = Field(
        0.0,
        ge=0,
        description="while pending, an absence up to this long does not restart the onset wait",
    )


# IEC 60601-2-27 wants a heart-rate alarm within 10 s of the condition; a 10 s window's
# median crosses a limit ~5 s into an event, so the HR kinds wait only 2 s more.
# AF needs >= 30 s of ECG before it may be called AF (ESC 2020 / EHRA 2022).
_KIND_TIMINGS: dict[str, dict[str, float]] = {
    "tachycardia": {"onset_s": 2, "repeat_s": 120, "resolve_s": 15},
    "bradycardia": {"onset_s": 2, "repeat_s": 120, "resolve_s": 15},
    # AF is called on a 10 s window's median |ΔRR|, which dips below its limit now and then
    # in a real AF (a run of a dozen similar intervals happens by chance): an episode goes
    # on through a dip shorter than a window, as it does on a monitor's beat-by-beat AF
    # state, instead of starting its 30 s again (p95 latency 25 s beyond the 30 s before).
    # AF is called on a 10 s window, whose irregularity (and the rhythm model's score) dips
    # below the limit for a window or a few in a real AF: on the simulator's 20 AF episodes
    # (default ward, seeds 0-19) 1-6 s dips, most of 1 s. An episode goes on through a dip
    # of up to 4 s instead of starting its 30 s again (p95 beyond the 30 s: 33 -> 10 s);
    # longer tolerance let flickering ectopy and electrode artefact add up to 30 s.
    # The windows read the beats decided by their end, 0.3 s after the R peak
    # (beat_stream.DECISION_DELAY_S): a dip that ends when an irregular beat comes in ends
    # one window later in about a third of the dips (a 4 s dip became 5: default seed 10,
    # AF 40 -> 70 s, the dip five windows of a chance lag-2 repeat that read as bigeminy).
    # So the tolerance is the window detector's 4 s plus that one window step: 5 s. The
    # frequent premature beats whose flicker 5 s let add up to a false AF (2 on
    # arrhythmia_confounds seeds 4 and 18, dev-0002) are rejected by the rules instead:
    # a window that is all premature beats and pauses is ectopy (rules.ectopy_explained).
    "af": {"onset_s": 30, "repeat_s": 300, "resolve_s": 30, "onset_gap_s": 5},
    # A run stays in the 10 s window for 10 s: 3 s of it costs 3 s and rejects artefact
    # (an electrode pop read as a wide beat shows in a window or two, not three).
    "ventricular_run": {"onset_s": 0, "repeat_s": 60, "resolve_s": 30},
    "desaturation": {"onset_s": 5, "repeat_s": 120, "resolve_s": 15},
    "tachypnoea": {"onset_s": 5, "repeat_s": 120, "resolve_s": 15},
    "bradypnoea": {"onset_s": 5, "repeat_s": 120, "resolve_s": 15},
    "fever": {"onset_s": 5, "repeat_s": 600, "resolve_s": 30},
    "hypothermia": {"onset_s": 5, "repeat_s": 600, "resolve_s": 30},
    "fall": {"onset_s": 0, "repeat_s": 60, "resolve_s": 15},
    "news2": {"onset_s": 5, "repeat_s": 300, "resolve_s": 30},
    "sensor_detached": {"onset_s": 3, "repeat_s": 120, "resolve_s": 10},
    "poor_signal": {"onset_s": 30, "repeat_s": 300, "resolve_s": 15},
    "low_battery": {"onset_s": 10, "repeat_s": 900, "resolve_s": 30},
    "device_silent": {"onset_s": 0, "repeat_s": 300, "resolve_s": 0},
}


class RuleSettings(_Group):
    """Alert thresholds and timings (``stream/alerts/``: trust, limits, rules, fall, news2,
    lifecycle).

    Any float threshold here can be overridden per patient through
    ``Profile.thresholds`` (same field name). Sources of the defaults are cited in
    stream/alerts/limits.py (and trust.py, rules.py) next to the code that uses them.
    """

    # Signal quality: below these the signal is not trusted for physiological alerts.
    ecg_sqi_good: float = Field(0.5, ge=0, le=1)
    ppg_sqi_good: float = Field(0.5, ge=0, le=1)
    poor_signal_action: Literal["downgrade", "suppress"] = Field(
        "downgrade", description="what poor (not detached) signal does to alerts derived from it"
    )
    # Heart rate, bpm.
    tachycardia_bpm: float = 120.0
    tachycardia_high_bpm: float = 150.0
    bradycardia_bpm: float = 50.0
    bradycardia_high_bpm: float = 40.0
    hr_hysteresis_bpm: float = 5.0
    # SpO2, %; scale 2 is for hypercapnic patients with a target of 88-92 %.
    desaturation_pct: float = 91.0
    desaturation_high_pct: float = 85.0
    desaturation_scale2_pct: float = 83.0
    desaturation_scale2_high_pct: float = 80.0
    spo2_hysteresis_pct: float = 2.0
    # Respiration, breaths/min.
    tachypnoea_rpm: float = 25.0
    tachypnoea_high_rpm: float = 35.0
    bradypnoea_rpm: float = 8.0
    bradypnoea_high_rpm: float = 5.0
    resp_hysteresis_rpm: float = 2.0
    # Temperature, °C. Device temperature + offset estimates core temperature.
    skin_temp_offset_c: float = 0.0
    fever_c: float = 38.1
    fever_high_c: float = 39.1
    hypothermia_c: float = 35.0
    hypothermia_high_c: float = 34.0
    temp_hysteresis_c: float = 0.3
    # Rhythm.
    # stream.signal.rhythm's median |ΔRR| / median RR: sinus ~0.02, AF typically 0.1-0.3.
    af_rr_irregularity: float = 0.1
    model_threshold: float = Field(0.5, description="used when a model card has no threshold")
    ventricular_ectopic_fraction: float = 0.25
    # A ventricular run is faster than 100 bpm (AHA/ACC/HRS 2017 ventricular arrhythmia
    # guideline: non-sustained VT); the alarm needs six such beats in a row
    # (stream.signal.rhythm.RUN_INTERVALS). Slower runs (bigeminy, isolated premature
    # beats) are not alerted as runs.
    ventricular_run_rate_bpm: float = 100.0
    model_hysteresis: float = Field(0.1, description="probability margin to clear a model alert")
    model_outputs: dict[str, str] = Field(
        default_factory=lambda: {
            "af": "af",
            "ventricular": "ventricular_run",
            "ventricular_run": "ventricular_run",
            "deterioration": "deterioration",
        },
        description="model class name -> alert kind; other classes raise nothing",
    )
    # Falls.
    fall_impact_g: float = 3.5
    fall_inactive_activity_g: float = 0.1
    fall_inactivity_s: float = 5.0
    fall_confirm_within_s: float = 30.0
    # NEWS2 responses that raise an alert.
    news2_alert_responses: tuple[str, ...] = ("medium", "high")
    # Technical.
    low_battery_pct: float = 20.0
    low_battery_high_pct: float = 10.0
    battery_hysteresis_pct: float = 2.0
    timing: dict[str, AlertTiming] = Field(
        default_factory=lambda: {k: AlertTiming(**v) for k, v in _KIND_TIMINGS.items()},
        description="per-kind lifecycle timings; kinds not named use default_timing",
    )
    default_timing: AlertTiming = AlertTiming(onset_s=5, repeat_s=120, resolve_s=15)

    @field_validator("timing", mode="before")
    @classmethod
    def _keep_default_timings(cls, given: object) -> object:
        # An override of one kind (even of one field) must not drop the other defaults.
        if not isinstance(given, dict):
            return given
        merged: dict[str, object] = {k: dict(v) for k, v in _KIND_TIMINGS.items()}
        for kind, value in given.items():
            if isinstance(value, dict):
                merged[kind] = {**merged.get(kind, {}), **value}  # type: ignore[dict-item]
            else:
                merged[kind] = value
        return merged

    def timing_of(self, kind: str) -> AlertTiming:
        return self.timing.get(kind, self.default_timing)

    def designed_delay_s(self, kind: str) -> float:
        """How long a condition must last, by design, before its alert fires: the onset
        delay, and for a fall the inactivity after the impact it waits out."""
        extra = self.fall_inactivity_s if kind == "fall" else 0.0
        return self.timing_of(kind).onset_s + extra


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
    rules: RuleSettings = RuleSettings()
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

    @property
    def influx_token(self) -> str | None:
        """The InfluxDB token: given, from its file, or the local services' own."""
        return self._secret(self.influx.token, self.influx.token_file, "influx_token")

    @property
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

    def child_env_vars(self) -> dict[str, str]:
        """``VITALSTREAM_*`` variables under which a child ``vitalstream`` process (a worker,
        a simulator) reads the same broker, topics, bucket, consumer group and data dir as
        these settings: how isolated test, bench and soak runs hand their names down."""
        env = {f"VITALSTREAM_TOPICS__{k.upper()}": v for k, v in self.topics.model_dump().items()}
        return env | {
            "VITALSTREAM_KAFKA__BOOTSTRAP": self.kafka.bootstrap,
            "VITALSTREAM_KAFKA__PARTITIONS": str(self.kafka.partitions),
            "VITALSTREAM_INFLUX__URL": self.influx.url,
            "VITALSTREAM_INFLUX__ORG": self.influx.org,
            "VITALSTREAM_INFLUX__BUCKET": self.influx.bucket,
            "VITALSTREAM_SERVICES__DATA_DIR": str(self.services.data_dir),
            "VITALSTREAM_STREAM__APP_ID": self.stream.app_id,
            "VITALSTREAM_STREAM__WEB_PORT": "0",  # several children on one host: any free port
        }


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
