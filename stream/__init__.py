"""VitalStream's streaming service: ingest, features, scoring, alerts, sinks, subscriptions.

Importing this package imports nothing heavy: Faust is only loaded by ``stream.worker.app``,
so ``models/`` can share the pure signal code in ``stream.signal.features``.
"""
