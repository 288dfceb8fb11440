"""`vitalstream models ...` and `vitalstream train` (placeholder)."""
import typer

models_app = typer.Typer(help="List, inspect and promote model versions.", no_args_is_help=True)


def train() -> None:
    """Train a model offline."""
    raise SystemExit("not built yet")
