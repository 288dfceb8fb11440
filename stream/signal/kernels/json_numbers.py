"""JSON sample arrays to float64, all blocks of a batch in one compiled call.

Owns reading the ``samples`` of decoded frames — the raw JSON text of each block, laid
one after the other in one byte buffer — into one float64 array, with the exact
structure the schema allows: ``[a, b, ...]`` for a scalar signal, ``[[x, y, z], ...]``
for the accelerometer. Each number is converted exactly (the double nearest to its
decimal value, as a correctly rounding parser such as Python's ``float()`` gives) by
Clinger's fast path: a decimal mantissa below 2**53 and a power of ten of magnitude at
most 22 are both exact doubles, so one IEEE multiplication or division by that power is
correctly rounded (W. D. Clinger, "How to read floating point numbers accurately",
PLDI 1990, section on the easy cases).

Anything outside that — more digits, a larger exponent, an empty list, a nested list
where a number belongs, ``null``, strings, booleans, ``NaN``, bad JSON — is not parsed
but *flagged*: the caller sends the block's frame to the reference validator, which
knows the exact reason or accepts what this kernel does not read. A block whose samples
leave its plausible range ``lo..hi`` or whose count leaves ``1..max_len`` is flagged too.

>>> buffer = np.frombuffer(b"[1.5,-2e-1, 3][[0,0.5,1E0]][null]", np.uint8)
>>> values, first, counts, flagged = parse_blocks(
...     buffer, np.array([0, 14, 27]), np.array([14, 27, 33]), np.array([False, True, False]),
...     np.full(3, -10.0), np.full(3, 10.0), 20_000)
>>> values[: first[2]].tolist(), counts.tolist(), flagged.tolist()
([1.5, -0.2, 3.0, 0.0, 0.5, 1.0], [3, 1, 0], [False, False, True])
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Powers of ten that are exact doubles (5**22 < 2**53): Clinger's fast path.
MAX_EXACT_POWER = 22
MAX_EXACT_MANTISSA = 2**53
# Digits of a mantissa (those of the fraction all count) beyond which it is not read:
# 18 fit in an int64 (16 already reach past 2**53).
MAX_DIGITS = 18
_POWERS = np.array([10.0**k for k in range(MAX_EXACT_POWER + 1)])

_SPACE, _TAB, _NEWLINE, _RETURN = 0x20, 0x09, 0x0A, 0x0D
# JSON's whitespace, by byte (every such byte is <= _SPACE: one comparison skips the rest).
_IS_SPACE = np.zeros(_SPACE + 1, np.bool_)
_IS_SPACE[[_SPACE, _TAB, _NEWLINE, _RETURN]] = True
_OPEN, _CLOSE, _COMMA = 0x5B, 0x5D, 0x2C
_MINUS, _PLUS, _DOT, _ZERO, _NINE = 0x2D, 0x2B, 0x2E, 0x30, 0x39
_E_LOWER, _E_UPPER = 0x65, 0x45


@njit(cache=True, error_model="numpy")
def _parse_blocks(
    buffer: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    triples: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    max_len: int,
    powers: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # One function, no calls: numba's calls between compiled functions cost here five
    # times the parsing itself (measured), so whitespace skips and the number are inline.
    blocks = len(starts)
    # A number takes a byte and its separator another: an upper bound on the values.
    out = np.empty(len(buffer) // 2 + blocks + 1)
    first = np.empty(blocks + 1, np.int64)
    counts = np.zeros(blocks, np.int64)
    flagged = np.zeros(blocks, np.bool_)
    write = 0
    for b in range(blocks):
        first[b] = write
        at, end = starts[b], ends[b]
        triple = triples[b]
        width = 3 if triple else 1
        lo, hi = lows[b], highs[b]
        written = write
        count = 0
        ok = False
        while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
            at += 1
        if at < end and buffer[at] == _OPEN:
            at += 1
            ok = True
        while ok:  # one sample a turn
            while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
                at += 1
            if triple:
                if at >= end or buffer[at] != _OPEN:
                    ok = False
                    break
                at += 1
            for k in range(width):
                while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
                    at += 1
                # The number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
                ok = False
                negative = False
                if at < end and buffer[at] == _MINUS:
                    negative = True
                    at += 1
                if at >= end or buffer[at] < _ZERO or buffer[at] > _NINE:
                    break
                mantissa = 0
                begin = at
                if buffer[at] == _ZERO:
                    at += 1
                    if at < end and _ZERO <= buffer[at] <= _NINE:  # a leading zero: not JSON
                        break
                    begin = at  # a lone zero adds no digit
                else:
                    while at < end and _ZERO <= buffer[at] <= _NINE:
                        mantissa = mantissa * 10 + np.int64(buffer[at] - _ZERO)
                        at += 1
                digits = at - begin
                is_integer = True
                scale = 0
                if at < end and buffer[at] == _DOT:
                    is_integer = False
                    at += 1
                    begin = at
                    while at < end and _ZERO <= buffer[at] <= _NINE:
                        mantissa = mantissa * 10 + np.int64(buffer[at] - _ZERO)
                        at += 1
                    if at == begin:
                        break
                    scale = begin - at
                    digits += at - begin
                # Counted, not stopped at: past MAX_DIGITS the mantissa may have wrapped,
                # and is not used.
                if digits > MAX_DIGITS:
                    break
                if at < end and (buffer[at] == _E_LOWER or buffer[at] == _E_UPPER):
                    is_integer = False
                    at += 1
                    exponent_negative = False
                    if at < end and (buffer[at] == _MINUS or buffer[at] == _PLUS):
                        exponent_negative = buffer[at] == _MINUS
                        at += 1
                    if at >= end or buffer[at] < _ZERO or buffer[at] > _NINE:
                        break
                    exponent = 0
                    while at < end and _ZERO <= buffer[at] <= _NINE and exponent <= 10_000:
                        exponent = exponent * 10 + np.int64(buffer[at] - _ZERO)
                        at += 1
                    if exponent > 10_000:  # far outside the fast path already
                        break
                    scale += -exponent if exponent_negative else exponent
                if (
                    mantissa > MAX_EXACT_MANTISSA
                    or scale > MAX_EXACT_POWER
                    or scale < -MAX_EXACT_POWER
                ):
                    break
                value = float(mantissa)
                value = value * powers[scale] if scale >= 0 else value / powers[-scale]
                # A JSON integer is an integer first: `-0` is the integer 0, hence +0.0.
                if negative and not (is_integer and mantissa == 0):
                    value = -value
                if not (lo <= value <= hi):
                    break
                out[write] = value
                write += 1
                while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
                    at += 1
                if k < width - 1:
                    if at >= end or buffer[at] != _COMMA:
                        break
                    at += 1
                ok = True
            if not ok:
                break
            if triple:
                if at >= end or buffer[at] != _CLOSE:
                    ok = False
                    break
                at += 1
                while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
                    at += 1
            count += 1
            if count > max_len or at >= end:
                ok = False
                break
            separator = buffer[at]
            at += 1
            if separator == _CLOSE:
                break
            if separator != _COMMA:
                ok = False
        while at < end and buffer[at] <= _SPACE and _IS_SPACE[buffer[at]]:
            at += 1
        if ok and at == end:
            counts[b] = count
        else:
            flagged[b] = True
            write = written  # its values are dropped: the next block writes over them
    first[blocks] = write
    return out[:write], first, counts, flagged


def parse_blocks(
    buffer: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    triples: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
    max_len: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every block ``buffer[starts[b]:ends[b]]`` read as samples (triples where
    ``triples[b]``) within ``lows[b]..highs[b]`` and ``1..max_len`` of them.

    Returns ``(values, first, counts, flagged)``: block ``b``'s numbers are
    ``values[first[b]:first[b + 1]]`` (flat; ``3 * counts[b]`` of them for triples),
    ``counts[b]`` its samples; a flagged block has none.
    """
    return _parse_blocks(
        buffer,
        np.asarray(starts, np.int64),
        np.asarray(ends, np.int64),
        np.asarray(triples, np.bool_),
        np.asarray(lows, np.float64),
        np.asarray(highs, np.float64),
        int(max_len),
        _POWERS,
    )
