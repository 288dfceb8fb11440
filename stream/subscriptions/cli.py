"""`vitalstream alerts ...` (placeholder)."""
import typer

alerts_app = typer.Typer(help="Serve, issue tokens for, and tail the alert feed.", no_args_is_help=True)
