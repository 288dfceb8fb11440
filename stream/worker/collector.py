"""The worker process's garbage-collector policy.

Owns :func:`settle`, called once a worker (or a benchmark of its pipeline) has loaded its
models and compiled its kernels. A batch of a thousand frames makes tens of thousands of
short-lived container objects (decoded frames, feature dicts, lines), none in reference
cycles; with CPython's default thresholds (700 allocations) the cyclic collector ran every
dozen frames, promoted the batch's objects and set off full collections that walk the
whole heap: the models, the kernels' dispatchers, every device's state. Measured on the
analysis benchmark (300 devices): about 0.9 s of collection per 2,400 device-seconds.

- :func:`gc.freeze` moves everything alive at start-up to the permanent generation, which
  no collection walks again;
- a gen-0 threshold of :data:`GEN0_THRESHOLD` lets a batch's garbage go by reference
  counting before the collector looks (the older generations keep their defaults).

Reference cycles are still collected, only less often. Example::

    >>> import gc
    >>> before = gc.get_threshold()
    >>> settle()
    >>> gc.get_threshold()[0] == GEN0_THRESHOLD
    True
    >>> gc.unfreeze(); gc.set_threshold(*before)
"""

from __future__ import annotations

import gc

# Allocations between gen-0 collections: about a batch's worth of frames' objects.
GEN0_THRESHOLD = 50_000


def settle() -> None:
    """Freeze the start-up heap and raise the gen-0 threshold (see the module)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
