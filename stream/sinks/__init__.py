"""Sinks: line protocol and the measurement schema, the InfluxDB transport, its
retry policy and its disk spool."""
