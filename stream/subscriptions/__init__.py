"""Alert subscriptions: the real-time alert feed and everything around it.

- :mod:`.cursor` — resumable positions (per-partition Kafka offsets) as opaque strings.
- :mod:`.filters` — subscription filters parsed from query parameters.
- :mod:`.tokens` — hashed bearer tokens with ward/patient/ack scopes.
- :mod:`.book` — open-alert state and the escalation decision (pure).
- :mod:`.feed` — the shared Kafka consumer, its ring of recent events and the subscribers.
- :mod:`.webhooks` — signed webhook deliveries with per-endpoint queues and retry.
- :mod:`.fhir` — FHIR R4(B) DetectedIssue / Observation renderings.
- :mod:`.app` — the FastAPI service; :mod:`.server` runs it with uvicorn.
- :mod:`.client` — :class:`AlertClient`, an auto-resuming SSE client; :mod:`.tail` renders it.
"""
