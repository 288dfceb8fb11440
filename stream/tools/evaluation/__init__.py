"""Offline alarm-quality evaluation (``vitalstream evaluate``).

The worker's own in-memory core (:class:`stream.worker.pipeline.Pipeline`, shipped
models) runs over simulated scenarios × seeds, and the alerts it raises are matched with
the simulator's ground-truth labels: recall and detection latency per event kind, false
alarms and alarm burden per patient-hour.

- :mod:`.matching`: which alert kinds explain which labelled event (``EXPLAINS``), and the
  matching of one run's alarms with its labels. Pure.
- :mod:`.metrics`: the figures over many runs (recall, latency, false alarms per
  patient-hour, ...), as one JSON-ready dict. Pure.
- :mod:`.runner`: scenarios × seeds through the pipeline, in worker processes.
- :mod:`.report`: the terminal table, the JSON file and the Markdown report;
  :mod:`.figures` its matplotlib figures.
"""
