"""`vitalstream simulate` and `vitalstream replay` (placeholder)."""


def simulate() -> None:
    """Simulate a wearable fleet."""
    raise SystemExit("not built yet")


def replay() -> None:
    """Replay a real recording as device frames."""
    raise SystemExit("not built yet")
