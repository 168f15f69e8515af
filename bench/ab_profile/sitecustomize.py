"""Loaded by bench/ab.py's gateways (on their PYTHONPATH): SIGUSR1 starts cProfile on
the main thread, where uvicorn's event loop runs; SIGUSR2 stops it and writes the
statistics to $VIDGATE_AB_PROFILE."""

import cProfile
import os
import signal

_out = os.environ.get("VIDGATE_AB_PROFILE")
if _out:
    _profile = cProfile.Profile()

    def _start(signum: int, frame: object) -> None:
        _profile.enable()

    def _stop(signum: int, frame: object) -> None:
        _profile.disable()
        _profile.dump_stats(_out)

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
