"""Alarm burden (``vitalstream alerts report`` and ``vitalstream alerts simulate-week``).

What the alarms of a time window cost the people who answer them, from what InfluxDB
holds: alarms per patient-day by kind and priority, the share acknowledged, the time to
acknowledge, and the clinicians' verdicts (``adjudications``).

- :mod:`.metrics`: the figures from plain rows, and the window's parsing. Pure.
- :mod:`.influx`: the Flux queries that read those rows, and writing lines (the
  simulation). The only module here that talks to InfluxDB.
- :mod:`.report`: the terminal table, ``report.json`` and ``report.md``;
  :mod:`.figures` its matplotlib PNGs.
- :mod:`.simulate`: a simulated week: the worker's in-memory pipeline over labelled
  scenarios, each alarm adjudicated by :mod:`stream.tools.adjudicator` through the alert
  service's own book, written to InfluxDB in the production format.
"""
