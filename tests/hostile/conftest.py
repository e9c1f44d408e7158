"""Hostile-client tests: each starts its own Warren (free ports, fresh data dir) and abuses it
the way a broken or malicious client would, then checks the broker kept serving and gave the
resources back.

Sizes are short by default (the suite fits in a few minutes on 2 cores); HOSTILE_FULL=1 runs
the full sizes. The binary is $WARREN_BIN (default target/release/warren); run.sh runs it all."""

import os
import resource
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from broker import WARREN_BIN, Warren  # noqa: E402
from common import FULL  # noqa: E402


def _raise_nofile():
    # Thousands of client sockets live in this process too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_raise_nofile()


def pytest_report_header(config):
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return [f"hostile: {'FULL' if FULL else 'short'} sizes, broker {WARREN_BIN}, "
            f"client RLIMIT_NOFILE {soft}"]


@pytest.fixture
def start_warren():
    """start_warren(*args, prlimit_nofile=None, data_dir=None) -> Warren. Every broker started
    is stopped at teardown, and must still be running then: a test that crashed it fails here
    even if its own assertions passed."""
    started = []

    def start(*args, prlimit_nofile=None, data_dir=None):
        w = Warren(args, prlimit_nofile=prlimit_nofile, data_dir=data_dir)
        started.append(w)
        return w

    yield start
    crashed = []
    for w in started:
        if not w.stopped and not w.alive():
            crashed.append(f"Warren (pid {w.pid}) exited with {w.proc.returncode}:\n{w.log_tail()}")
        w.stop()
    if crashed:
        pytest.fail("\n".join(crashed))


@pytest.fixture
def warren(start_warren):
    """A broker with default settings."""
    return start_warren()

