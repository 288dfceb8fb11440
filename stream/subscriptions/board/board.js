// VitalStream ward board (docs/board.md). Plain browser JavaScript, no build step, no
// third-party code. Served by the alert service with a CSP that allows only this origin.
//
// Owns: signing in with a bearer token (kept in this closure's memory only: never in the
// URL, a cookie or web storage), the live feed (GET /alerts/stream read with fetch() and a
// stream reader, because EventSource cannot send an Authorization header; resumed with
// Last-Event-ID = the cursor of the last event applied, so a reconnect neither loses nor
// repeats an alert), the alert list with IEC 60601-1-8 colours and sounds, acknowledging
// with a verdict, the escalation state, and the selected patient's last 30 minutes of
// heart rate, SpO2 and respiration (GET /vitals, drawn as inline SVG).
//
// State the browser tests read is mirrored on data-* attributes: body[data-connection],
// body[data-events] (alert events applied from the stream), body[data-reconnects],
// body[data-bursts] and body[data-last-burst]; each alert row's li[data-alert-id],
// [data-status], [data-priority], [data-level], [data-events], [data-received-at] (ms).
"use strict";

(() => {
  // ---- constants ------------------------------------------------------------------------

  const PRIORITY_RANK = { high: 3, medium: 2, low: 1 };
  const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };
  const PRIORITY_LABEL = { high: "High", medium: "Medium", low: "Low" };
  const VERDICT_LABEL = {
    actionable: "Actionable",
    not_actionable: "Not actionable",
    artefact: "Artefact",
  };
  const VALUE_LABEL = { hr: "HR", spo2: "SpO₂", resp: "RR", temp: "Temp", battery: "Battery" };
  const MAX_CLOSED_ROWS = 300;
  const RETRY_FIRST_MS = 500;
  const RETRY_MAX_MS = 5000;
  // The server pings every 15 s; a stream silent for this long is dead (half-open TCP).
  const STREAM_SILENCE_MS = 45000;
  const HISTORY_MINUTES = 30;
  const HISTORY_REFRESH_MS = 15000;
  const CHARTS = [
    { field: "hr", label: "Heart rate", unit: "bpm", lo: 40, hi: 140 },
    { field: "spo2", label: "SpO₂", unit: "%", lo: 85, hi: 100 },
    { field: "resp", label: "Respiration", unit: "/min", lo: 5, hi: 30 },
  ];

  // ---- auditory alarm signals (IEC 60601-1-8) -------------------------------------------
  //
  // IEC 60601-1-8:2006+A1:2012+A2:2020, 6.3.3 and Tables 3 and 4 (auditory alarm signals):
  //  - pulse: fundamental f0 150..1000 Hz with at least 4 harmonic components in
  //    300..4000 Hz; rise time 10..20 % of the pulse duration td.
  //  - HIGH priority: a burst of 10 pulses "xxx-xx---xxx-xx": td 75..200 ms; spacing x =
  //    50..125 ms between pulses 1-2, 2-3, 4-5, 6-7, 7-8, 9-10; 2x+td between 3-4 and 8-9;
  //    0.35..1.30 s between 5-6; burst interval 2.5..15 s.
  //  - MEDIUM priority: a burst of 3 pulses "xxx": td 125..250 ms, spacing y = 125..250 ms;
  //    burst interval 2.5..30 s.
  //  - LOW priority: 1 or 2 pulses (td 125..250 ms, spacing y); repeated no more often
  //    than every 15 s, or not at all (here: once, when the alert arrives).
  // Visual (Table 2): HIGH red flashing 1.4..2.8 Hz, MEDIUM yellow flashing 0.4..0.8 Hz,
  // LOW cyan (or yellow) constant; duty cycle 20..60 % on (board.css).
  const F0_HZ = 440;
  const HARMONICS = [
    [1, 1.0],
    [2, 0.5],
    [3, 0.35],
    [4, 0.25],
    [5, 0.2],
  ]; // 440, 880, 1320, 1760, 2200 Hz: five components within 300..4000 Hz
  const HIGH_TD = 0.15; // s
  const HIGH_X = 0.1; // s
  const MEDIUM_LOW_TD = 0.2;
  const MEDIUM_LOW_Y = 0.2;
  const BURSTS = {
    // Pulse start times in seconds within the burst, derived from td and spacing above.
    high: burstStarts(HIGH_TD, [
      HIGH_X, HIGH_X, 2 * HIGH_X + HIGH_TD, HIGH_X, 0.5,
      HIGH_X, HIGH_X, 2 * HIGH_X + HIGH_TD, HIGH_X,
    ]),
    medium: burstStarts(MEDIUM_LOW_TD, [MEDIUM_LOW_Y, MEDIUM_LOW_Y]),
    low: burstStarts(MEDIUM_LOW_TD, [MEDIUM_LOW_Y]),
  };
  const PULSE_TD = { high: HIGH_TD, medium: MEDIUM_LOW_TD, low: MEDIUM_LOW_TD };
  // Start of one burst to the start of the next (the gap after the burst is within the
  // standard's burst interval: high 10 - 3.3 = 6.7 s, medium 15 - 1.0 = 14 s).
  const REPEAT_MS = { high: 10000, medium: 15000 };

  function burstStarts(td, spacings) {
    const starts = [0];
    for (const gap of spacings) starts.push(starts[starts.length - 1] + td + gap);
    return starts;
  }

  // ---- state ----------------------------------------------------------------------------

  let session = null; // {token, me, cursor, active, controller, ...}; null when signed out
  const entries = new Map(); // alert_id -> entry
  let selected = null; // alert_id
  let historyTimer = null;
  let historyRequest = 0;
  const counters = { events: 0, reconnects: 0, bursts: 0 };
  const audio = {
    ctx: null,
    muted: false,
    busyUntil: 0,
    next: { high: 0, medium: 0 },
  };

  const $ = (id) => document.getElementById(id);
  const ui = {};

  // ---- HTTP -----------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, code, detail) {
      super(detail || code);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { method = "GET", body, token = session && session.token } = {}) {
    const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const code = (payload && payload.error) || `http_${response.status}`;
      throw new ApiFailure(response.status, code, payload && payload.detail);
    }
    return payload;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- signing in and out ---------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const token = ui.token.value.trim();
    ui.token.value = "";
    ui.tokenError.textContent = "";
    if (!token) {
      ui.tokenError.textContent = "Enter your access token.";
      ui.token.focus();
      return;
    }
    unlockAudio(); // the submit is the user's gesture that allows sound
    ui.signInButton.disabled = true;
    try {
      const me = await api("/me", { token });
      startSession(token, me);
    } catch (err) {
      ui.tokenError.textContent =
        err instanceof ApiFailure && err.status === 401
          ? "This token is not valid (unknown, revoked or expired)."
          : "The alert service did not answer; try again.";
      ui.token.focus();
    } finally {
      ui.signInButton.disabled = false;
    }
  }

  function startSession(token, me) {
    session = { token, me, cursor: null, active: true, controller: null };
    entries.clear();
    ui.alerts.replaceChildren();
    selected = null;
    counters.events = 0;
    counters.reconnects = 0;
    publishCounters();
    const wards = me.wards === "*" ? "all wards" : `ward ${me.wards.join(", ")}`;
    const patients = me.patients.length ? `, patients ${me.patients.join(", ")}` : "";
    ui.scope.textContent = `${me.subject} · ${wards}${patients}${me.can_ack ? " · may acknowledge" : " · view only"}`;
    ui.scope.hidden = false;
    ui.signIn.hidden = true;
    ui.board.hidden = false;
    ui.barActions.hidden = false;
    ui.detail.hidden = true;
    renderCount();
    ui.alertsTitle.setAttribute("tabindex", "-1");
    ui.alertsTitle.focus();
    runFeed(session);
  }

  function signOut(message) {
    if (session) {
      session.active = false;
      if (session.controller) session.controller.abort();
    }
    session = null;
    clearInterval(historyTimer);
    historyTimer = null;
    entries.clear();
    ui.alerts.replaceChildren();
    selected = null;
    ui.board.hidden = true;
    ui.barActions.hidden = true;
    ui.scope.hidden = true;
    ui.signIn.hidden = false;
    ui.tokenError.textContent = message || "";
    setConnection("signed-out", "Signed out");
    ui.token.focus();
  }

  // ---- the live feed ----------------------------------------------------------------------

  function setConnection(state, text) {
    document.body.dataset.connection = state;
    ui.connection.textContent = text;
  }

  function publishCounters() {
    document.body.dataset.events = String(counters.events);
    document.body.dataset.reconnects = String(counters.reconnects);
    document.body.dataset.bursts = String(counters.bursts);
  }

  async function loadSnapshot(current) {
    const snap = await api("/board/snapshot", { token: current.token });
    if (!current.active) return;
    entries.clear();
    ui.alerts.replaceChildren();
    for (const item of snap.alerts) {
      const entry = newEntry(item.alert);
      entry.status = item.status;
      entry.level = item.escalation_level;
      entry.updated = item.updated;
      entry.by = item.alert.acknowledged_by || null;
      entry.note = item.alert.note || null;
      entry.verdict = item.alert.verdict || null;
      entries.set(item.alert.alert_id, entry);
      renderRow(entry);
    }
    current.cursor = snap.cursor;
    renderCount();
    if (selected && !entries.has(selected)) selectAlert(null);
    else if (selected) renderDetail();
  }

  async function runFeed(current) {
    let delay = RETRY_FIRST_MS;
    let connectedBefore = false;
    const retry = async (text) => {
      setConnection("reconnecting", text);
      await sleep(delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    };
    while (current.active) {
      if (current.cursor === null) {
        try {
          await loadSnapshot(current);
        } catch (err) {
          if (err instanceof ApiFailure && err.status === 401) {
            signOut("Your token has expired or was revoked. Sign in again.");
            return;
          }
          await retry("Alert service unavailable; retrying…");
          continue;
        }
      }
      const controller = new AbortController();
      current.controller = controller;
      setConnection(connectedBefore ? "reconnecting" : "connecting", "Connecting…");
      let response;
      try {
        response = await fetch("/alerts/stream", {
          headers: {
            Authorization: `Bearer ${current.token}`,
            Accept: "text/event-stream",
            "Last-Event-ID": current.cursor,
          },
          cache: "no-store",
          credentials: "omit",
          signal: controller.signal,
        });
      } catch (_) {
        if (!current.active) return;
        await retry("Connection lost; reconnecting…");
        continue;
      }
      if (!current.active) return;
      if (response.status === 401) {
        signOut("Your token has expired or was revoked. Sign in again.");
        return;
      }
      if (response.status === 400) {
        // A cursor the server no longer knows (topic recreated): start again from a snapshot.
        current.cursor = null;
        await retry("Resynchronising…");
        continue;
      }
      if (!response.ok || !response.body) {
        await retry("Alert service starting; retrying…");
        continue;
      }
      if (connectedBefore) counters.reconnects += 1;
      connectedBefore = true;
      publishCounters();
      const outcome = await consume(response, current, controller);
      if (!current.active) return;
      if (outcome.expired) {
        signOut("Your token has expired or was revoked. Sign in again.");
        return;
      }
      if (outcome.gotReady) delay = RETRY_FIRST_MS;
      if (outcome.lagging) continue; // resume at once from the cursor it carried
      await retry("Connection lost; reconnecting…");
    }
  }

  async function consume(response, current, controller) {
    const outcome = { gotReady: false, lagging: false, expired: false };
    let watchdog = null;
    const arm = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), STREAM_SILENCE_MS);
    };
    const parser = new SseParser((event) => {
      if (!current.active) return;
      if (event.event === "ready") {
        outcome.gotReady = true;
        if (event.id) current.cursor = event.id;
        setConnection("live", "Live");
      } else if (event.event === "alert") {
        applyEvent(JSON.parse(event.data), true);
        // The cursor moves only after the alert is applied: a drop in between resumes
        // at this alert, never after it.
        if (event.id) current.cursor = event.id;
      } else if (event.event === "lagging") {
        outcome.lagging = true;
        current.cursor = JSON.parse(event.data).cursor || current.cursor;
        controller.abort();
      } else if (event.event === "expired") {
        outcome.expired = true;
        controller.abort();
      }
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        parser.push(value);
        if (outcome.lagging || outcome.expired) break;
      }
    } catch (_) {
      // aborted (sign-out, watchdog, lagging) or the connection dropped: the caller decides
    } finally {
      clearTimeout(watchdog);
      try {
        await reader.cancel();
      } catch (_) {
        /* already closed */
      }
    }
    return outcome;
  }

  // The text/event-stream format (WHATWG HTML, "Server-sent events"): lines end with CRLF,
  // LF or CR; "field: value"; a blank line dispatches; lines starting with ":" are comments.
  class SseParser {
    constructor(onEvent) {
      this.onEvent = onEvent;
      this.buffer = "";
      this.reset();
      this.id = "";
    }

    reset() {
      this.event = "";
      this.data = [];
    }

    push(chunk) {
      this.buffer += chunk;
      for (;;) {
        const match = /\r\n|\r|\n/.exec(this.buffer);
        if (!match) return;
        // A lone CR at the end may be the first half of a CRLF split across chunks.
        if (match[0] === "\r" && match.index === this.buffer.length - 1) return;
        const line = this.buffer.slice(0, match.index);
        this.buffer = this.buffer.slice(match.index + match[0].length);
        this.line(line);
      }
    }

    line(line) {
      if (line === "") {
        if (this.data.length) {
          this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
        }
        this.reset();
        return;
      }
      if (line.startsWith(":")) return;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
      else if (field === "id" && !value.includes("\0")) this.id = value;
    }
  }

  // ---- alert state ------------------------------------------------------------------------

  function newEntry(alert) {
    return {
      id: alert.alert_id,
      alert,
      status: "open",
      level: 0,
      updated: 0,
      verdict: null,
      by: null,
      note: null,
      events: 0,
      receivedAt: Date.now(),
      row: null,
    };
  }

  // The same folding as the server's alert book (stream/subscriptions/book.py).
  function applyEvent(alert, live) {
    let entry = entries.get(alert.alert_id);
    const isNew = !entry;
    if (isNew) {
      entry = newEntry(alert);
      entries.set(alert.alert_id, entry);
    }
    switch (alert.event) {
      case "triggered":
      case "repeated":
        entry.alert = alert;
        break;
      case "escalated":
        entry.level = Math.max(entry.level, alert.escalation_level || 0);
        break;
      case "acknowledged":
        if (entry.status === "open") entry.status = "acknowledged";
        entry.by = alert.acknowledged_by || entry.by;
        entry.note = alert.note || entry.note;
        entry.verdict = alert.verdict || entry.verdict;
        entry.level = Math.max(entry.level, alert.escalation_level || 0);
        break;
      case "resolved":
        entry.status = "resolved";
        break;
      default:
        break;
    }
    entry.updated = Math.max(entry.updated, alert.emitted_at || alert.t_event || 0);
    if (live) {
      entry.events += 1;
      counters.events += 1;
      publishCounters();
    }
    renderRow(entry);
    pruneClosed();
    renderCount();
    if (entry.id === selected) renderDetail();
    if (live && alert.event === "triggered" && entry.status === "open") {
      announce(entry);
      onNewAlarm(alert.priority);
    }
    if (live && alert.event === "escalated" && entry.status === "open") onNewAlarm("high");
  }

  function pruneClosed() {
    const closed = [...entries.values()].filter((e) => e.status !== "open");
    if (closed.length <= MAX_CLOSED_ROWS) return;
    closed.sort((a, b) => a.updated - b.updated);
    for (const entry of closed.slice(0, closed.length - MAX_CLOSED_ROWS)) {
      if (entry.id === selected) continue;
      entries.delete(entry.id);
      if (entry.row) entry.row.remove();
    }
  }

  // ---- rendering ----------------------------------------------------------------------------

  function words(kind) {
    const text = String(kind).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function clock(epochS) {
    if (!epochS) return "";
    return new Date(epochS * 1000).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
  }

  function valuesText(values) {
    return Object.entries(values || {})
      .map(([name, value]) => `${VALUE_LABEL[name] || name} ${Math.round(value * 10) / 10}`)
      .join(" · ");
  }

  function statusText(entry) {
    if (entry.status === "acknowledged") {
      const verdict = entry.verdict ? ` (${VERDICT_LABEL[entry.verdict] || entry.verdict})` : "";
      return `Acknowledged${entry.by ? ` by ${entry.by}` : ""}${verdict}`;
    }
    return entry.status === "resolved" ? "Resolved" : "Open";
  }

  function escalationText(entry) {
    return entry.level > 0 ? `Escalated to level ${entry.level} of 3` : "Not escalated";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function sortKey(entry) {
    return [
      STATUS_RANK[entry.status] ?? 3,
      -(PRIORITY_RANK[entry.alert.priority] || 0),
      -(entry.alert.t_onset || 0),
    ];
  }

  function before(a, b) {
    const ka = sortKey(a);
    const kb = sortKey(b);
    for (let i = 0; i < ka.length; i += 1) {
      if (ka[i] !== kb[i]) return ka[i] < kb[i];
    }
    return a.id < b.id;
  }

  function renderRow(entry) {
    const alert = entry.alert;
    if (!entry.row) {
      const li = el("li", "alert");
      const button = el("button", "alert-select");
      button.type = "button";
      button.addEventListener("click", () => selectAlert(entry.id, true));
      li.append(button);
      entry.row = li;
    }
    const li = entry.row;
    const button = li.firstChild;
    li.dataset.alertId = entry.id;
    li.dataset.priority = alert.priority;
    li.dataset.status = entry.status;
    li.dataset.level = String(entry.level);
    li.dataset.events = String(entry.events);
    li.dataset.receivedAt = String(entry.receivedAt);
    li.dataset.verdict = entry.verdict || "";
    li.className = `alert priority-${alert.priority} status-${entry.status}`;
    button.setAttribute("aria-current", entry.id === selected ? "true" : "false");
    button.setAttribute(
      "aria-label",
      `${PRIORITY_LABEL[alert.priority] || alert.priority} priority ${words(alert.kind)}, ` +
        `patient ${alert.patient}, ward ${alert.ward}, ${statusText(entry)}, ${escalationText(entry)}`,
    );
    const badge = el("span", "badge", PRIORITY_LABEL[alert.priority] || alert.priority);
    badge.setAttribute("aria-hidden", "true");
    const main = el("span", "alert-main");
    main.append(el("span", "kind", words(alert.kind)), el("span", "values", valuesText(alert.values)));
    const who = el("span", "who", `${alert.patient} · ward ${alert.ward} · ${clock(alert.t_onset)}`);
    const state = el("span", "state", statusText(entry));
    const parts = [badge, main, who, state];
    if (entry.level > 0) parts.push(el("span", "escalation", `Level ${entry.level}`));
    button.replaceChildren(...parts);
    placeRow(entry);
  }

  function placeRow(entry) {
    const li = entry.row;
    const hadFocus = li.contains(document.activeElement);
    let next = null;
    for (const child of ui.alerts.children) {
      if (child === li) continue;
      const other = entries.get(child.dataset.alertId);
      if (other && before(entry, other)) {
        next = child;
        break;
      }
    }
    if (li.parentNode === ui.alerts && li.nextSibling === next) return;
    ui.alerts.insertBefore(li, next);
    if (hadFocus) li.firstChild.focus();
  }

  function renderCount() {
    const open = [...entries.values()].filter((e) => e.status === "open").length;
    ui.alertCount.textContent = `(${open} open, ${entries.size} shown)`;
    ui.noAlerts.hidden = entries.size > 0;
  }

  function announce(entry) {
    const alert = entry.alert;
    ui.announce.textContent =
      `${PRIORITY_LABEL[alert.priority] || alert.priority} priority alert: ` +
      `${words(alert.kind)}, patient ${alert.patient}, ward ${alert.ward}`;
  }

  // ---- selection, detail and acknowledgement --------------------------------------------------

  function selectAlert(alertId, moveFocus) {
    const previous = selected && entries.get(selected);
    const previousPatient = previous ? previous.alert.patient : null;
    selected = alertId;
    for (const entry of entries.values()) {
      if (entry.row) entry.row.firstChild.setAttribute("aria-current", entry.id === alertId ? "true" : "false");
    }
    if (!alertId) {
      ui.detail.hidden = true;
      clearInterval(historyTimer);
      historyTimer = null;
      return;
    }
    ui.ackResult.textContent = "";
    ui.ackNote.value = "";
    renderDetail();
    ui.detail.hidden = false;
    const patient = entries.get(alertId).alert.patient;
    if (patient !== previousPatient || !historyTimer) {
      ui.charts.replaceChildren();
      loadHistory(patient);
      clearInterval(historyTimer);
      historyTimer = setInterval(() => loadHistory(patient), HISTORY_REFRESH_MS);
    }
    if (moveFocus) ui.detailTitle.focus();
  }

  function renderDetail() {
    const entry = entries.get(selected);
    if (!entry) return;
    const alert = entry.alert;
    ui.detail.dataset.alertId = entry.id;
    ui.detail.dataset.status = entry.status;
    ui.detail.className = `detail priority-${alert.priority} status-${entry.status}`;
    ui.detailTitle.textContent = `${PRIORITY_LABEL[alert.priority] || alert.priority} priority: ${words(alert.kind)}`;
    const facts = [
      ["Patient", alert.patient],
      ["Ward", alert.ward],
      ["Device", alert.device_id],
      ["Since", clock(alert.t_onset)],
      ["Values", valuesText(alert.values) || "—"],
      ["Message", alert.message || "—"],
      ["Status", statusText(entry)],
      ["Escalation", escalationText(entry)],
    ];
    if (entry.note) facts.push(["Note", entry.note]);
    ui.detailFacts.replaceChildren(
      ...facts.flatMap(([term, value]) => [el("dt", "", term), el("dd", "", value)]),
    );
    const canAck = Boolean(session && session.me.can_ack && entry.status === "open");
    const focusInForm = ui.ackForm.contains(document.activeElement);
    ui.ackForm.hidden = !canAck;
    if (!canAck && focusInForm) ui.detailTitle.focus();
  }

  async function acknowledge(verdict) {
    const entry = entries.get(selected);
    if (!entry || !session) return;
    const buttons = ui.ackForm.querySelectorAll("button");
    buttons.forEach((b) => {
      b.disabled = true;
    });
    ui.ackResult.textContent = "Sending…";
    try {
      await api(`/alerts/${encodeURIComponent(entry.id)}/ack`, {
        method: "POST",
        body: { note: ui.ackNote.value.trim(), verdict },
      });
      ui.ackResult.textContent = `Acknowledged as ${VERDICT_LABEL[verdict]}.`;
      ui.ackNote.value = "";
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 409) {
        ui.ackResult.textContent = `Not recorded: ${err.message}.`;
      } else if (err instanceof ApiFailure && err.status === 401) {
        signOut("Your token has expired or was revoked. Sign in again.");
        return;
      } else {
        ui.ackResult.textContent = `Not recorded: ${err.message || "no answer"}. Try again.`;
      }
    } finally {
      buttons.forEach((b) => {
        b.disabled = false;
      });
    }
  }

  // ---- the patient's last 30 minutes ----------------------------------------------------------

  async function loadHistory(patient) {
    if (!session) return;
    const request = ++historyRequest;
    const query = new URLSearchParams({ patient, minutes: String(HISTORY_MINUTES) });
    try {
      const history = await api(`/vitals?${query}`);
      if (request !== historyRequest || !session) return;
      ui.vitalsStatus.textContent = "";
      ui.charts.replaceChildren(...CHARTS.map((spec) => chart(spec, history)));
    } catch (err) {
      if (request !== historyRequest) return;
      ui.vitalsStatus.textContent =
        err instanceof ApiFailure && err.status === 403
          ? "Your token does not cover this patient's vitals."
          : "Vitals history unavailable; retrying.";
    }
  }

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function chart(spec, history) {
    const points = history.series[spec.field] || [];
    const width = 600;
    const height = 130;
    const left = 46;
    const right = 10;
    const top = 10;
    const bottom = 22;
    const end = history.now;
    const span = history.minutes * 60;
    const start = end - span;
    const values = points.map((p) => p[1]);
    let lo = Math.min(spec.lo, ...values);
    let hi = Math.max(spec.hi, ...values);
    if (hi - lo < 1) {
      hi += 1;
      lo -= 1;
    }
    const x = (t) => left + ((t - start) / span) * (width - left - right);
    const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
    const round = (v) => Math.round(v * 10) / 10;
    const summary = points.length
      ? `${spec.label}: latest ${round(values[values.length - 1])} ${spec.unit}, lowest ` +
        `${round(Math.min(...values))}, highest ${round(Math.max(...values))} ` +
        `(${points.length} points in ${history.minutes} min)`
      : `${spec.label}: no readings in the last ${history.minutes} minutes`;

    const figure = el("figure", "chart");
    figure.dataset.field = spec.field;
    figure.dataset.points = String(points.length);
    const titleId = `chart-${spec.field}-title`;
    const plot = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-labelledby": titleId,
      class: "plot",
    });
    plot.append(svg("title", { id: titleId }, summary));
    for (const value of [lo, (lo + hi) / 2, hi]) {
      plot.append(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
      plot.append(svg("text", { x: left - 6, y: y(value) + 4, class: "tick", "text-anchor": "end" }, String(round(value))));
    }
    const ticks = [
      [start, `-${history.minutes} min`, "start"],
      [start + span / 2, `-${history.minutes / 2} min`, "middle"],
      [end, "now", "end"],
    ];
    for (const [t, label, anchor] of ticks) {
      plot.append(svg("text", { x: x(t), y: height - 6, class: "tick", "text-anchor": anchor }, label));
    }
    // One polyline per run of points; a gap of more than 3 windows breaks the line.
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        plot.append(svg("polyline", { points: run.join(" "), class: `line ${spec.field}` }));
      }
      run = [];
    };
    let previous = null;
    for (const [t, v] of points) {
      if (previous !== null && t - previous > 3 * history.window_s) flush();
      run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      previous = t;
    }
    flush();
    for (const [t, v] of points.slice(-1)) {
      plot.append(svg("circle", { cx: x(t), cy: y(v), r: 3, class: `dot ${spec.field}` }));
    }
    const caption = el("figcaption", "summary", summary);
    figure.append(caption, plot);
    return figure;
  }

  // ---- sound --------------------------------------------------------------------------------

  function unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!audio.ctx) audio.ctx = new Context();
    if (audio.ctx.state === "suspended") audio.ctx.resume();
  }

  function pulse(ctx, output, t0, td) {
    const envelope = ctx.createGain();
    const rise = 0.15 * td; // 10..20 % of td
    envelope.gain.setValueAtTime(0, t0);
    envelope.gain.linearRampToValueAtTime(1, t0 + rise);
    envelope.gain.setValueAtTime(1, t0 + td - rise);
    envelope.gain.linearRampToValueAtTime(0, t0 + td);
    envelope.connect(output);
    for (const [harmonic, amplitude] of HARMONICS) {
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.frequency.value = F0_HZ * harmonic;
      gain.gain.value = amplitude;
      oscillator.connect(gain).connect(envelope);
      oscillator.start(t0);
      oscillator.stop(t0 + td + 0.02);
    }
  }

  function playBurst(priority) {
    const ctx = audio.ctx;
    if (!ctx || audio.muted || !session) return false;
    if (ctx.state === "suspended") ctx.resume();
    const output = ctx.createGain();
    output.gain.value = 0.15;
    output.connect(ctx.destination);
    const t0 = ctx.currentTime + 0.05;
    const starts = BURSTS[priority];
    for (const start of starts) pulse(ctx, output, t0 + start, PULSE_TD[priority]);
    const lengthMs = (starts[starts.length - 1] + PULSE_TD[priority]) * 1000 + 100;
    audio.busyUntil = performance.now() + lengthMs;
    counters.bursts += 1;
    document.body.dataset.lastBurst = priority;
    publishCounters();
    return true;
  }

  function highestOpen() {
    let top = 0;
    for (const entry of entries.values()) {
      if (entry.status !== "open") continue;
      const rank = PRIORITY_RANK[entry.alert.priority] || 0;
      const escalated = entry.level > 0 ? PRIORITY_RANK.high : 0;
      top = Math.max(top, rank, escalated);
    }
    return top;
  }

  function onNewAlarm(priority) {
    // A new alarm condition sounds at once (after any burst still playing); LOW sounds only
    // here, once, and only when nothing of higher priority is open.
    if (priority in audio.next) audio.next[priority] = 0;
    if (priority === "low" && highestOpen() <= PRIORITY_RANK.low) {
      if (performance.now() >= audio.busyUntil) playBurst("low");
    }
    alarmTick();
  }

  function alarmTick() {
    if (!session || audio.muted || !audio.ctx) return;
    const now = performance.now();
    if (now < audio.busyUntil) return;
    const top = highestOpen();
    const priority = top === PRIORITY_RANK.high ? "high" : top === PRIORITY_RANK.medium ? "medium" : null;
    if (priority && now >= audio.next[priority] && playBurst(priority)) {
      audio.next[priority] = now + REPEAT_MS[priority];
    }
  }

  function toggleSound() {
    audio.muted = !audio.muted;
    if (!audio.muted) unlockAudio();
    ui.sound.setAttribute("aria-pressed", String(audio.muted));
    document.body.dataset.muted = String(audio.muted);
  }

  // ---- wiring -------------------------------------------------------------------------------

  function init() {
    Object.assign(ui, {
      token: $("token"),
      tokenError: $("token-error"),
      signIn: $("sign-in"),
      signInButton: $("sign-in-button"),
      board: $("board"),
      barActions: $("bar-actions"),
      scope: $("scope"),
      connection: $("connection"),
      sound: $("sound"),
      alerts: $("alerts"),
      alertsTitle: $("alerts-title"),
      alertCount: $("alert-count"),
      noAlerts: $("no-alerts"),
      detail: $("detail"),
      detailTitle: $("detail-title"),
      detailFacts: $("detail-facts"),
      ackForm: $("ack-form"),
      ackNote: $("ack-note"),
      ackResult: $("ack-result"),
      vitalsStatus: $("vitals-status"),
      charts: $("charts"),
      announce: $("announce"),
    });
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    ui.sound.addEventListener("click", toggleSound);
    ui.ackForm.addEventListener("submit", (event) => event.preventDefault());
    for (const button of ui.ackForm.querySelectorAll("button[data-verdict]")) {
      button.addEventListener("click", () => acknowledge(button.dataset.verdict));
    }
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && selected) {
        const entry = entries.get(selected);
        selectAlert(null);
        if (entry && entry.row) entry.row.firstChild.focus();
      }
    });
    // Leaving the page closes the stream at once (the server stops waiting on it); a page
    // restored from the back-forward cache reconnects from its cursor.
    window.addEventListener("pagehide", () => {
      if (session && session.controller) session.controller.abort();
    });
    setInterval(alarmTick, 500);
    // Relative freshness is shown as clock times; nothing else needs a timer.
    ui.token.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
