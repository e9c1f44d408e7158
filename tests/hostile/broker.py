"""A Warren process of the tests' own (free ports, a fresh data dir) and what they read about it
from /proc. Shared by conftest.py and the command-line tools (idle.py)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(ROOT, "target", "release", "warren"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, interval=0.05, what="condition"):
    """Polls `condition` until it returns a truthy value (returned) or `timeout` seconds pass
    (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; the fields after its closing parenthesis do not.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def settled_rss(pid, *, interval=0.5, tolerance=0.005, timeout=15):
    """RSS once two readings `interval` apart agree within `tolerance` (allocators and lazy
    page faults keep moving it for a moment after a burst of work)."""
    deadline = time.monotonic() + timeout
    previous = rss_bytes(pid)
    while True:
        time.sleep(interval)
        current = rss_bytes(pid)
        if abs(current - previous) <= tolerance * previous or time.monotonic() >= deadline:
            return current
        previous = current


class Warren:
    """One broker process. `args` are extra `warren serve` flags; `prlimit_nofile` runs it under
    `prlimit --nofile=N:N` (so it cannot raise its own descriptor limit); `data_dir` is one of
    the caller's (kept at stop) instead of a fresh one."""

    def __init__(self, args=(), prlimit_nofile=None, binary=WARREN_BIN, data_dir=None):
        self.tmp = tempfile.mkdtemp(prefix="warren-hostile.")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "warren.log")
        self.amqp_port = free_port()
        self.http_port = free_port()
        cmd = [binary, "serve", "--bind", "127.0.0.1", "--amqp-port", str(self.amqp_port),
               "--http-port", str(self.http_port), "--prometheus-port", "0",
               "--data-dir", self.data_dir, "--log", os.environ.get("HOSTILE_WARREN_LOG", "warn"), *args]
        if prlimit_nofile:
            # prlimit execs the broker, so the pid we hold is Warren's own.
            cmd = ["prlimit", f"--nofile={prlimit_nofile}:{prlimit_nofile}", *cmd]
        self.log = open(self.log_path, "wb")
        self.stopped = False   # by stop(), as opposed to exiting by itself
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.http = requests.Session()
        self.http.auth = ("guest", "guest")
        # No keep-alive: an idle HTTP connection would be one more descriptor in the broker
        # and skew the descriptor counts the tests compare.
        self.http.headers["Connection"] = "close"
        try:
            wait_for(self._ready, 20, what="Warren to listen")
        except BaseException:
            self.stop()
            raise

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"Warren exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1):
                pass
            return self.api("GET", "/api/overview").status_code == 200
        except (OSError, requests.RequestException):
            return False

    def api(self, method, path, json=None, timeout=30):
        return self.http.request(method, f"http://127.0.0.1:{self.http_port}{path}",
                                 json=json, timeout=timeout)

    def connection_count(self):
        r = self.api("GET", "/api/overview")
        r.raise_for_status()
        return r.json()["object_totals"]["connections"]

    def queue_info(self, name):
        r = self.api("GET", f"/api/queues/%2F/{name}")
        r.raise_for_status()
        return r.json()

    def alive(self):
        return self.proc.poll() is None

    def rss(self):
        return rss_bytes(self.pid)

    def fds(self):
        return fd_count(self.pid)

    def cpu(self):
        return cpu_seconds(self.pid)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.http.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
