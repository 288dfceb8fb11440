"""`vitalstream worker|demo|analyze|soak|bench` (placeholder)."""


def worker() -> None:
    """Run a stream worker."""
    raise SystemExit("not built yet")


def demo() -> None:
    """Run the live demo."""
    raise SystemExit("not built yet")


def analyze() -> None:
    """Analyze a recording offline."""
    raise SystemExit("not built yet")


def soak() -> None:
    """Run the soak test."""
    raise SystemExit("not built yet")


def bench() -> None:
    """Run a benchmark suite."""
    raise SystemExit("not built yet")
