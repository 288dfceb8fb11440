"""The local InfluxDB 2.7: built once from source with Go (+ flux's Rust), then run detached.

The binary is cached per version under ``<cache_dir>/influxdb/<version>/influxd``; a cold
build takes ~25 minutes on two cores and shows its phase while it runs, its full log kept
in ``build.log`` next to the binary. Data, pid and logs live under ``<data_dir>/influxdb``;
onboarding (org, bucket, token) happens once per data directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from stream.config import Settings
from stream.services import process
from stream.services.errors import ServiceError
from stream.services.health import find_bucket
from stream.services.local_secrets import read_local_secret

PKG_CONFIG_MODULE = "github.com/influxdata/pkg-config@v0.2.14"
RECIPE_FILES = ("go.mod", "go.sum", "main.go")
# Flux denies warnings under its `strict` feature and pins Rust 1.72; newer compilers add
# lints its code trips. RUSTFLAGS does not reach build-script (host) crates when cargo is
# given --target, a rustc wrapper does, so it caps lints for every crate it compiles.
RUSTC_WRAPPER = """\
#!/bin/sh
rustc="$1"; shift
case " $* " in
  *" --cap-lints"*) exec "$rustc" "$@" ;;
  *" --crate-name "*) exec "$rustc" "$@" --cap-lints warn ;;
esac
exec "$rustc" "$@"
"""
GO_PHASE = "compiling influxd (Go, ~10 min)"
RUST_PHASE = "compiling flux (Rust, ~10 min)"


@dataclass(frozen=True)
class InfluxLayout:
    """Where one local InfluxDB keeps its binary, data, pid and logs."""

    build_dir: Path
    home: Path

    @property
    def binary(self) -> Path:
        return self.build_dir / "influxd"

    @property
    def build_log(self) -> Path:
        return self.build_dir / "build.log"

    @property
    def bolt(self) -> Path:
        return self.home / "influxd.bolt"

    @property
    def engine(self) -> Path:
        return self.home / "engine"

    @property
    def sqlite(self) -> Path:
        return self.home / "influxd.sqlite"

    @property
    def pid_file(self) -> Path:
        return self.home / "influxd.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "influxd.log"

    def tail(self, lines: int = 30) -> str:
        return process.log_tail(self.log_file, lines)


def layout(settings: Settings) -> InfluxLayout:
    local = settings.services
    return InfluxLayout(
        build_dir=local.cache_dir / "influxdb" / local.influxdb_version,
        home=local.data_dir / "influxdb",
    )


def _recipe_version() -> str:
    go_mod = (resources.files("stream.services") / "recipes" / "influxd" / "go.mod").read_text()
    match = re.search(r"github\.com/influxdata/influxdb/v2 v(\S+)", go_mod)
    if match is None:
        raise ServiceError("the influxd recipe go.mod does not require influxdb/v2")
    return match.group(1)


def _require_tools() -> None:
    hints = {
        "go": "install Go 1.23+ (https://go.dev/dl)",
        "cargo": "install Rust with rustup (https://rustup.rs)",
        "pkg-config": "apt-get install pkg-config",
        "cc": "apt-get install build-essential",
    }
    missing = [f"{tool} ({hint})" for tool, hint in hints.items() if shutil.which(tool) is None]
    if missing:
        raise ServiceError("building InfluxDB needs " + "; ".join(missing))


def _build_env(tools: Path) -> dict[str, str]:
    wrapper = tools / "rustc-cap-lints"
    if not wrapper.is_file() or wrapper.read_text() != RUSTC_WRAPPER:
        wrapper.write_text(RUSTC_WRAPPER)
        wrapper.chmod(0o755)
    return {
        **os.environ,
        "PKG_CONFIG": str(tools / "pkg-config"),
        "RUSTC_WRAPPER": str(wrapper),
        "RUSTUP_TOOLCHAIN": "stable",
        "CGO_ENABLED": "1",
    }


def _phase_of(line: str, phase: str) -> str:
    if "Executing cargo build" in line:
        return RUST_PHASE
    if "Build succeeded" in line:
        return GO_PHASE
    if line.strip() == "vitalstream.local/influxd":
        return "linking influxd"
    return phase


def _run_logged(
    argv: list[str], cwd: Path, env: dict[str, str], log: Path, console: Console
) -> None:
    """Run a build step into the log, showing its phase; ServiceError with the tail on failure."""
    phase = GO_PHASE if argv[1] == "build" else "building the pkg-config wrapper (Go, ~1 min)"
    with log.open("ab") as sink:
        child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    started = time.monotonic()
    last_note = started
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]InfluxDB build[/] {task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(phase)
        with log.open("r", errors="replace") as reader:
            reader.seek(0, os.SEEK_END)
            while child.poll() is None:
                for line in reader.readlines():
                    new_phase = _phase_of(line, phase)
                    if new_phase != phase:
                        phase = new_phase
                        if not console.is_terminal:
                            console.print(f"InfluxDB build: {phase}")
                progress.update(task, description=phase)
                # CI logs have no spinner: a heartbeat shows the build is alive.
                if not console.is_terminal and time.monotonic() - last_note > 60:
                    last_note = time.monotonic()
                    console.print(f"InfluxDB build: {phase}, {(last_note - started) / 60:.0f} min")
                time.sleep(0.5)
    if child.returncode != 0:
        raise ServiceError(
            f"building InfluxDB failed ({argv[0]} {argv[1]} exited {child.returncode}); "
            f"full log: {log}",
            process.log_tail(log, 40),
        )


def ensure_binary(settings: Settings, console: Console) -> Path:
    """Build influxd once per version (cached); returns its path."""
    paths = layout(settings)
    if paths.binary.is_file():
        return paths.binary
    version = settings.services.influxdb_version
    recipe_version = _recipe_version()
    if version != recipe_version:
        raise ServiceError(
            f"the influxd recipe builds InfluxDB {recipe_version}, not {version}: "
            "set VITALSTREAM_SERVICES__INFLUXDB_VERSION to it or update recipes/influxd/go.mod"
        )
    _require_tools()
    paths.build_dir.mkdir(parents=True, exist_ok=True)
    with process.file_lock(paths.build_dir / ".build.lock"):
        if paths.binary.is_file():
            return paths.binary
        tools = settings.services.cache_dir / "tools"
        tools.mkdir(parents=True, exist_ok=True)
        env = _build_env(tools)
        source = paths.build_dir / "src"
        source.mkdir(exist_ok=True)
        recipe = resources.files("stream.services") / "recipes" / "influxd"
        for name in RECIPE_FILES:
            (source / name).write_text((recipe / name).read_text())
        paths.build_log.write_text("")
        console.print(
            f"Building InfluxDB {version} from source once (~25 min on 2 cores); "
            f"log: {paths.build_log}"
        )
        started = time.monotonic()
        if not (tools / "pkg-config").is_file():
            install = ["go", "install", PKG_CONFIG_MODULE]
            _run_logged(install, source, {**env, "GOBIN": str(tools)}, paths.build_log, console)
        partial = paths.build_dir / "influxd.partial"
        build = [
            "go", "build", "-v",
            "-tags", "sqlite_foreign_keys,sqlite_json",
            "-ldflags", f"-X main.version={version}",
            "-o", str(partial), ".",
        ]  # fmt: skip
        _run_logged(build, source, env, paths.build_log, console)
        # Renamed only when complete, so an interrupted build never counts as cached.
        partial.rename(paths.binary)
        console.print(f"Built InfluxDB {version} in {(time.monotonic() - started) / 60:.1f} min")
    return paths.binary


def running_pid(settings: Settings) -> int | None:
    """The pid of the influxd we started, if it still runs."""
    paths = layout(settings)
    return process.running_pid(paths.pid_file, str(paths.bolt))


def start(settings: Settings, binary: Path) -> int:
    """Start influxd detached on loopback; returns its pid."""
    paths = layout(settings)
    for directory in (paths.home, paths.engine, paths.log_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    argv = [
        str(binary),
        f"--bolt-path={paths.bolt}",
        f"--engine-path={paths.engine}",
        f"--sqlite-path={paths.sqlite}",
        f"--http-bind-address=127.0.0.1:{settings.services.influxdb_port}",
        "--reporting-disabled",
        "--log-level=error",
    ]
    return process.start_detached(argv, paths.pid_file, paths.log_file, cwd=paths.home)


def stop(settings: Settings) -> bool:
    """Stop the influxd we started; False if none ran."""
    paths = layout(settings)
    return process.stop(paths.pid_file, str(paths.bolt), timeout_s=20.0)


def onboard(settings: Settings) -> bool:
    """First-run setup (user, org, bucket, token) if the server still allows it.

    Returns True when this call onboarded; afterwards ensures the configured bucket exists.
    """
    url = settings.influx.url.rstrip("/")
    token = settings.influx_token
    if not token:
        raise ServiceError("no InfluxDB token to onboard with (secrets were not generated)")
    allowed = httpx.get(f"{url}/api/v2/setup", timeout=5).json().get("allowed", False)
    if allowed:
        response = httpx.post(
            f"{url}/api/v2/setup",
            json={
                "username": "vitalstream",
                "password": read_local_secret(settings, "influx_password"),
                "org": settings.influx.org,
                "bucket": settings.influx.bucket,
                "token": token,
                "retentionPeriodSeconds": 0,
            },
            timeout=10,
        )
        if response.status_code != 201:
            raise ServiceError(
                f"InfluxDB setup failed: HTTP {response.status_code} {response.text[:200]}"
            )
    ensure_bucket(settings, settings.influx.bucket)
    return allowed


def ensure_bucket(settings: Settings, name: str) -> None:
    """Create a bucket (infinite retention) in the configured org unless it exists."""
    from influxdb_client import InfluxDBClient
    from influxdb_client.rest import ApiException

    influx = settings.influx
    with InfluxDBClient(url=influx.url, token=settings.influx_token, org=influx.org) as client:
        try:
            if find_bucket(client, name, influx.org) is not None:
                return
            client.buckets_api().create_bucket(bucket_name=name, org=influx.org)
        except ApiException as exc:
            if exc.status == 401:
                raise ServiceError(
                    f"InfluxDB at {influx.url} rejected the token (401); its data dir "
                    f"{layout(settings).home} was onboarded with another token "
                    "(remove that directory to start over)"
                ) from exc
            raise ServiceError(
                f"creating bucket '{name}' failed: {exc.status} {exc.reason}"
            ) from exc
