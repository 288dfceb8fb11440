"""The local single-node Kafka and InfluxDB behind `vitalstream services`, and health checks.

`stack` starts/stops/reports both, `kafka` and `influxdb` own one service each (fetch or
build, config, process), `health` checks any configured Kafka/InfluxDB, `process` runs
detached processes by pid file, `local_secrets` generates the local token and keys.
"""
