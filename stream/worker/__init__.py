"""The worker: ingest, the Faust-free pipeline, offline analysis, the Faust app glue
and its metrics."""
