"""Alert subscriptions: the real-time alert feed and everything around it.

- :mod:`.cursor` — resumable positions (per-partition Kafka offsets) as opaque strings.
- :mod:`.filters` — subscription filters parsed from query parameters.
- :mod:`.tokens` — hashed bearer tokens with ward/patient/ack scopes.
- :mod:`.book` — open-alert state and the escalation decision (pure).
- :mod:`.feed` — the shared Kafka consumer, its ring of recent events and the subscribers.
- :mod:`.webhooks` — signed webhook deliveries with per-endpoint queues and retry.
- :mod:`.fhir` — FHIR R4(B) DetectedIssue / Observation renderings.
- :mod:`.app` — the FastAPI app factory; :mod:`.service` its shared state and lifetime;
  :mod:`.routes` the routers; :mod:`.deps` state and auth dependencies; :mod:`.errors`
  the error shape; :mod:`.access_log` the query-free access log; :mod:`.server` runs it
  with uvicorn.
- :mod:`.client` — :class:`AlertClient`, an auto-resuming SSE client; :mod:`.tail` renders it.
"""
