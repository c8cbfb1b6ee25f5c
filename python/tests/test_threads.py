"""One model shared by Python threads: same scores, the GIL released while xenc runs, Ctrl-C stops a
long predict between chunks."""

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import short_pairs


def test_two_threads_get_the_scores_of_one(model, golden_pairs):
    pairs = golden_pairs[:60] + short_pairs(300)
    one = model.predict(pairs)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(model.predict, pairs)
        b = pool.submit(model.predict, pairs[::-1])
        c = pool.submit(model.rank, golden_pairs[0][0], [d for _, d in golden_pairs[:40]])
        d = pool.submit(model.predict, pairs)
        assert np.array_equal(a.result(), one)
        assert np.array_equal(b.result(), one[::-1])
        assert np.array_equal(d.result(), one)
    assert c.result() == model.rank(golden_pairs[0][0], [d for _, d in golden_pairs[:40]])


def test_the_gil_is_released_while_predict_runs(model):
    # The main thread counts loop iterations it makes while the other thread is inside predict. With
    # the GIL held by predict it could make none (at most one switch interval before the call enters
    # xenc); released, it runs all along.
    pairs = short_pairs(2500)
    inside = threading.Event()
    done = threading.Event()
    result = {}

    def work():
        inside.set()
        result["scores"] = model.predict(pairs)
        inside.clear()
        done.set()

    t = threading.Thread(target=work)
    counted = 0
    t.start()
    inside.wait()
    while not done.is_set():
        if inside.is_set():
            counted += 1
    t.join()
    assert result["scores"].shape == (len(pairs),)
    assert counted > 10_000, counted


def test_ctrl_c_stops_a_long_predict(model):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    pairs = short_pairs(6 * 1024)
    reported = []

    def progress(done):
        reported.append(done)
        if len(reported) == 1:
            # Sent from another thread while the next chunk runs with the GIL released; the check
            # after that chunk raises KeyboardInterrupt.
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGINT)).start()

    with pytest.raises(KeyboardInterrupt):
        model._model.predict(pairs, None, progress)
    assert reported and reported[-1] < len(pairs), reported
    # The model is still usable.
    assert model.predict([("q", "d")]).shape == (1,)
