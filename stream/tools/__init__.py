"""Tooling around the stream core: benchmarks, the soak, fault injection, dashboard
checks. Never imported by the core."""
