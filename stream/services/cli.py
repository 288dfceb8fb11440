"""`vitalstream services up|down|status` (placeholder until the services module lands)."""
import typer

services_app = typer.Typer(help="Run the local Kafka broker and InfluxDB.", no_args_is_help=True)
