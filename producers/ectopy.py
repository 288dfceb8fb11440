"""Ectopic beats: isolated premature beats and ventricular bigeminy (the confound kinds).

Owns the beat-by-beat rules of the ``premature_beats`` and ``bigeminy`` events, applied by
:class:`~producers.physiology.Physiology` as it schedules beats. Both are real physiology
that is not an alarm condition: the rhythm is irregular, but the average rate stays
normal and there are never two premature beats in a row (no couplets, no runs).

A beat's RR here is the interval *after* it (``beat_rr`` in the body's ring), so the
decision that the next beat comes early is taken while the current one is scheduled:

- **PVC** (premature ventricular contraction): coupling interval 0.56-0.68 of the sinus
  RR, fixed per patient as for a single ventricular focus; wide QRS, no P, discordant T
  (drawn by :mod:`producers.waveforms`); a *full compensatory pause*: the sinus node is
  not reset, so coupling + pause = two sinus cycles (Zipes & Jalife, *Cardiac
  Electrophysiology*, ch. on ventricular ectopy; Goldberger's *Clinical
  Electrocardiography*). Weak pulse: short filling, and the body's beat amplitude rule
  (Frank-Starling) then gives the pulse after the pause more (post-extrasystolic
  potentiation).
- **PAC** (premature atrial contraction): coupling 0.65-0.78 of the sinus RR, narrow QRS
  with an abnormal (inverted, low) P; the sinus node is reset, so the pause is about one
  sinus cycle (1.0-1.12 x RR): *non-compensatory*.
- ``premature_beats``: a fraction ``0.15 x severity`` of all beats is premature (15 % at
  full severity, within the 10-20 % asked of "frequent" ectopy; more than 30 PVCs an hour
  is already "frequent" in Holter terms), 80 % of them PVCs. Each normal beat is followed
  by a premature one with probability ``f / (1 - f)``, so the share of premature beats is
  ``f`` while a premature beat is always followed by a normal one.
- ``bigeminy``: every other beat a PVC with a compensatory pause; severity brings the PVC
  earlier (coupling 0.68 -> 0.56 of the sinus RR). RR alternates short/long, the mean of
  a pair is two sinus cycles: the average rate is the sinus rate.

Randomness comes from the body's auxiliary stream only (never the main one), and only
for devices with an ectopy event: a ward without these events renders as before.
"""

from __future__ import annotations

import numpy as np

from producers.waveforms import PAC, PVC, SINUS

PREMATURE_FRACTION_FULL = 0.15  # share of beats premature at severity 1
PVC_SHARE = 0.8  # of premature beats; the rest are PACs
PVC_COUPLING = (0.56, 0.68)  # x sinus RR
PAC_COUPLING = (0.65, 0.78)
PAC_PAUSE = (1.0, 1.12)  # x sinus RR after a PAC (sinus node reset)


def premature_probability(severity: np.ndarray | float) -> np.ndarray:
    """Chance that a normal beat is followed by a premature one, for a premature share of
    ``0.15 x severity`` of all beats (premature beats never follow each other)."""
    fraction = PREMATURE_FRACTION_FULL * np.clip(np.asarray(severity, float), 0.0, 1.0)
    return fraction / (1.0 - fraction)


def bigeminy_coupling(severity: np.ndarray | float) -> np.ndarray:
    """Coupling interval of bigeminal PVCs as a fraction of the sinus RR."""
    lo, hi = PVC_COUPLING
    return hi - (hi - lo) * np.clip(np.asarray(severity, float), 0.0, 1.0)


class Ectopy:
    """Per-device state of the ectopic beats: the kind the next beat is due to be, and
    each patient's fixed coupling intervals."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pending = np.zeros(n, np.int8)  # SINUS (none), PVC or PAC: the next beat's kind
        self.pvc_coupling = rng.uniform(*PVC_COUPLING, n)
        self.pac_coupling = rng.uniform(*PAC_COUPLING, n)

    def active(self, due: np.ndarray, premature: np.ndarray, bigeminy: np.ndarray) -> np.ndarray:
        """Which of devices ``due`` (their event severities given) this class decides the
        next beats of: an ectopy event is on, or a premature beat is pending."""
        return (premature > 0) | (bigeminy > 0) | (self.pending[due] != SINUS)

    def cancel(self, devices: np.ndarray) -> None:
        """Forget a premature beat promised to these devices (their rhythm was reset)."""
        self.pending[devices] = SINUS

    def beats(
        self,
        due: np.ndarray,
        kind: np.ndarray,
        rr: np.ndarray,
        prev_rr: np.ndarray,
        premature: np.ndarray,
        bigeminy: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Kinds and following intervals of the beats now scheduled for devices ``due``.

        ``kind`` and ``rr`` are what the body would give without ectopy (``rr`` the sinus
        interval for sinus beats), ``prev_rr`` the interval before each beat (for a PVC: its
        coupling interval), ``premature``/``bigeminy`` the event severities of ``due``.
        Only sinus beats are touched: AF and ventricular runs take precedence.
        """
        kind, rr = kind.copy(), rr.copy()
        sinus = kind == SINUS
        pending = self.pending[due]
        # A beat promised as premature comes now, and is followed by its pause.
        pvc = sinus & (pending == PVC)
        pac = sinus & (pending == PAC)
        kind[pvc] = PVC
        kind[pac] = PAC
        rr[pvc] = np.maximum(2.0 * rr[pvc] - prev_rr[pvc], rr[pvc])  # full compensatory
        if pac.any():
            rr[pac] = rr[pac] * self.rng.uniform(*PAC_PAUSE, int(pac.sum()))
        # A normal beat may be followed by a premature one: always in bigeminy.
        normal = sinus & ~pvc & ~pac
        next_kind = np.full(due.size, SINUS, np.int8)
        big = normal & (bigeminy > 0)
        next_kind[big] = PVC
        maybe = np.flatnonzero(normal & ~big & (premature > 0))
        if maybe.size:
            draws = self.rng.random((2, maybe.size))
            early = draws[0] < premature_probability(premature[maybe])
            next_kind[maybe[early]] = np.where(draws[1][early] < PVC_SHARE, PVC, PAC)
        coupling = np.ones(due.size)
        coupling[big] = bigeminy_coupling(bigeminy[big])
        solo_pvc = (next_kind == PVC) & ~big
        coupling[solo_pvc] = self.pvc_coupling[due[solo_pvc]]
        coupling[next_kind == PAC] = self.pac_coupling[due[next_kind == PAC]]
        early = next_kind != SINUS
        if early.any():
            # Foci fire at a nearly fixed coupling: 2 % beat-to-beat jitter.
            jitter = 1.0 + 0.02 * self.rng.standard_normal(int(early.sum()))
            rr[early] = rr[early] * coupling[early] * jitter
        self.pending[due] = np.where(sinus, next_kind, SINUS)
        return kind, rr
