"""Settings: environment parsing, immutability, secret handling and masking."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from stream.config import Settings, load_settings
from stream.services.local_secrets import ensure_local_secrets

VITALSTREAM = str(Path(sys.executable).with_name("vitalstream"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VITALSTREAM_* from the caller, no .env, and local secrets in a private dir."""
    for name in list(os.environ):
        if name.startswith("VITALSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    monkeypatch.setenv("VITALSTREAM_SERVICES__DATA_DIR", str(data_dir))
    return data_dir


def test_nested_groups_come_from_double_underscore_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VITALSTREAM_KAFKA__BOOTSTRAP", "10.0.0.5:9092")
    monkeypatch.setenv("VITALSTREAM_KAFKA__PARTITIONS", "8")
    monkeypatch.setenv("VITALSTREAM_STREAM__WINDOW_S", "7.5")
    monkeypatch.setenv("VITALSTREAM_LOG_LEVEL", "DEBUG")
    settings = load_settings()
    assert settings.kafka.bootstrap == "10.0.0.5:9092"
    assert settings.kafka.partitions == 8
    assert settings.stream.window_s == 7.5
    assert settings.log_level == "DEBUG"
    assert settings.influx.url == "http://127.0.0.1:8086"


def test_dotenv_file_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VITALSTREAM_INFLUX__BUCKET=from-dotenv\n")
    assert load_settings().influx.bucket == "from-dotenv"


def test_keyword_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSTREAM_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="WARNING").log_level == "WARNING"


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSTREAM_KAFKA__PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        load_settings()


def test_settings_and_their_groups_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.log_level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.kafka.bootstrap = "elsewhere:9092"  # type: ignore[misc]
    copy = settings.model_copy(update={"log_level": "DEBUG"})
    assert (copy.log_level, settings.log_level) == ("DEBUG", "INFO")


def test_token_file_is_read_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    assert Settings(influx={"token_file": token_file}).influx_token == "file-token"
    with pytest.raises(ValidationError, match="does not exist"):
        Settings(influx={"token_file": tmp_path / "absent"})


def test_given_secret_wins_over_files(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token")
    settings = Settings(influx={"token": "given-token", "token_file": token_file})
    assert settings.influx_token == "given-token"


def test_local_secrets_are_generated_once_private_and_used(clean_environment: Path) -> None:
    assert load_settings().influx_token is None
    with pytest.raises(ValueError, match="pseudonymization key"):
        _ = load_settings().pseudonym_secret
    settings = load_settings()
    paths = ensure_local_secrets(settings)
    first = {name: path.read_text() for name, path in paths.items()}
    ensure_local_secrets(settings)
    assert {name: path.read_text() for name, path in paths.items()} == first
    for path in paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text().strip()) >= 32
    fresh = load_settings()
    assert fresh.influx_token == first["influx_token"].strip()
    assert fresh.pseudonym_secret == first["pseudonym_key"].strip().encode()
    assert fresh.secrets_dir == clean_environment / "secrets"


def test_config_show_json_masks_secrets(clean_environment: Path) -> None:
    env = {
        **os.environ,
        "VITALSTREAM_INFLUX__TOKEN": "influx-secret-1234",
        "VITALSTREAM_PSEUDONYM_KEY": "pseudonym-secret-5678",
        "VITALSTREAM_KAFKA__SASL_PASSWORD": "kafka-secret-9012",
        "VITALSTREAM_KAFKA__BOOTSTRAP": "broker.example:9093",
    }
    result = subprocess.run(
        [VITALSTREAM, "config", "show", "--json"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for secret in ("influx-secret-1234", "pseudonym-secret-5678", "kafka-secret-9012"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["influx"]["token"] == "**********"
    assert shown["pseudonym_key"] == "**********"
    assert shown["kafka"]["bootstrap"] == "broker.example:9093"


def test_invalid_setting_is_one_line_on_the_command_line() -> None:
    env = {**os.environ, "VITALSTREAM_KAFKA__PARTITIONS": "0"}
    result = subprocess.run(
        [VITALSTREAM, "config", "show"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting kafka.partitions: Input should be greater than or equal to 1"
    ]


def test_a_copied_settings_object_sees_its_own_secrets():
    from pydantic import SecretStr

    from stream.config import load_settings

    original = load_settings(influx={"token": "first"}, pseudonym_key="k1")
    copy = original.model_copy(
        update={
            "influx": original.influx.model_copy(update={"token": SecretStr("second")}),
            "pseudonym_key": SecretStr("k2"),
        }
    )
    assert (original.influx_token, copy.influx_token) == ("first", "second")
    assert (original.pseudonym_secret, copy.pseudonym_secret) == (b"k1", b"k2")


def test_child_env_vars_rebuild_the_same_names_in_a_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    parent = load_settings(
        topics={"frames": "frames-t1", "alerts": "alerts-t1"},
        influx={"bucket": "bucket-t1"},
        stream={"app_id": "app-t1"},
        kafka={"bootstrap": "127.0.0.1:19092", "partitions": 2},
        services={"data_dir": tmp_path},
    )
    for key, value in parent.child_env_vars().items():
        monkeypatch.setenv(key, value)
    child = load_settings()
    assert child.topics == parent.topics
    assert (child.influx.bucket, child.stream.app_id) == ("bucket-t1", "app-t1")
    assert (child.kafka.bootstrap, child.kafka.partitions) == ("127.0.0.1:19092", 2)
    assert child.services.data_dir == tmp_path
    assert child.stream.web_port == 0
