"""Pause Python's cyclic garbage collector while a burst of acyclic objects is made.

Parsing a 100k-entry policy makes ~400k small objects (YAML events, nodes, marks, port
specs); each allocation threshold crossed runs a collection over everything still young,
and the older generations get walked again and again: measured, that is 40% of the parse.
None of those objects form cycles, so nothing is lost by collecting once afterwards (the
next automatic pass) instead. Reference counting still frees everything as usual. Stdlib
only: the node side uses it too.
"""

import contextlib
import gc
import threading

_lock = threading.Lock()
_depth = 0   # pauses in force, across threads: the collector restarts when the last one ends


@contextlib.contextmanager
def gc_paused():
    """Within the block the collector does not run (if it was enabled when the first pause began)."""
    global _depth
    with _lock:
        if _depth == 0:
            _paused.enabled_before = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _paused.enabled_before:
                gc.enable()


class _paused:
    enabled_before = False
