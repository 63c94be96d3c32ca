"""bayctl.gcpause: the collector is off inside a pause and back as it was after the last one."""

import gc
import threading

from bayctl.gcpause import gc_paused


def test_a_pause_stops_the_collector_and_restores_it():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "the inner pause ended the outer one"
    assert gc.isenabled()


def test_an_error_inside_still_restores_the_collector():
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_threads_end_with_the_collector_on():
    inside, release = threading.Barrier(2), threading.Event()

    def pause():
        with gc_paused():
            inside.wait()
            release.wait()

    first = threading.Thread(target=pause)
    first.start()
    with gc_paused():
        inside.wait()
        release.set()
        first.join()
        assert not gc.isenabled(), "the other thread's pause ended this one"
    assert gc.isenabled()
