"""Trusted-tier worker: a persistent process that runs batches of programs.

Started by :mod:`cf_tasks.executor.pool` as a *script* (``python -I -S worker.py CONFIG``),
never through :mod:`multiprocessing`, so it does not depend on the host's start method or
re-import the caller's ``__main__`` (human-eval #48, lm-eval #2839). It imports the standard
library only and must not import ``cf_tasks``.

Why ``-S``: the site module would run every ``.pth`` file of the environment (our own
lm-eval start-up hook, editable-install finders, vendor hooks), costing ~25 ms per start and
running code we do not control in the worker. Instead the parent passes the site-packages
folders in CONFIG so that a trusted program can still ``import numpy``.

Protocol (both directions): frames of a 4-byte big-endian length followed by UTF-8 JSON.
Request: ``{"src": [source, ...], "jobs": [[src_index, entry_point, [kwargs, ...]], ...]}``.
Reply: one frame per job, in order: ``[[status, value_or_message], ...]`` (one pair per call),
written in bursts (at most every ``FLUSH_S``) so the parent sees progress without a syscall
per job. The first frame after start is ``{"ready": pid}``. Before each job the worker also
stores ``1 + job index`` in a shared-memory word (a memfd passed as ``progress_fd``), so after
a death or stall the parent knows exactly which job was running.

Limits enforced here (the parent adds the wall-clock kill from outside):
- per-call CPU time with ``setitimer(ITIMER_PROF)`` (raises inside Python code; the handler is
  re-installed before every call), and a check of the CPU clock after the call, so a program
  that ignores or replaces SIGPROF and returns late is still a ``timeout``; in the trusted
  worker a moving ``RLIMIT_CPU`` soft limit kills a C-level loop (``sum(range(10**12))``) that
  never returns to the interpreter with SIGXCPU a second or two later (the sandbox's server
  watches each call's CPU clock from outside instead);
- ``RLIMIT_AS`` (clamped to the hard limit) so allocation bombs raise ``MemoryError``;
- a per-job budget on the size of the JSON reply.

The worker exits when its parent process dies (a thread waits on a pidfd of the parent), so a
SIGKILLed caller leaves no worker running a batch.
"""

import builtins
import json
import math
import mmap
import os
import resource
import select
import signal
import struct
import sys
import time

_cpu_time = time.process_time  # bound once: a program rebinding time.process_time cannot fool the check

FLUSH_S = 0.02
RECURSION_LIMIT = 1000
MAX_MESSAGE = 200
_HEADER = struct.Struct(">I")


class _CallTimeout(BaseException):
    """Raised by the SIGPROF handler; BaseException so ``except Exception`` cannot eat it."""


_armed = False
_expired = False


def _on_sigprof(signum, frame):
    global _expired
    if _armed:
        _expired = True
        raise _CallTimeout()


def _read_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


def _frame(text):
    data = text.encode("utf-8")
    return _HEADER.pack(len(data)) + data


def _describe(exc):
    try:
        msg = str(exc)
    except BaseException:  # a hostile __str__ must not take the worker down
        msg = "<unprintable>"
    text = type(exc).__name__ + (": " + msg if msg else "")
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class _CpuBackstop:
    """Keeps ``RLIMIT_CPU``'s soft limit a little above the CPU time a call may reach."""

    def __init__(self, call_timeout):
        self.margin = math.ceil(call_timeout) + 1
        self.soft = None
        self.hard = resource.getrlimit(resource.RLIMIT_CPU)[1]

    def arm(self):
        want = int(time.process_time()) + self.margin + 1
        if self.soft is None or want > self.soft or want < self.soft - 2:
            if self.hard != resource.RLIM_INFINITY:
                want = min(want, self.hard)
            try:
                resource.setrlimit(resource.RLIMIT_CPU, (want, self.hard))
                self.soft = want
            except (ValueError, OSError):
                pass


def _apply_memory_limit(limit_bytes):
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))


class Runner:
    """Runs jobs; shared by the trusted worker and the untrusted zygote's children.

    ``progress`` (a one-word memoryview, optional) is bumped before every timed call so that
    a watcher outside the process can attribute CPU time to the call that is running.
    ``backstop=False`` skips the moving RLIMIT_CPU (the sandbox watches calls from outside).
    """

    def __init__(self, call_timeout, output_bytes, backstop=True):
        self.call_timeout = call_timeout
        self.output_bytes = output_bytes
        self.codes = {}
        self.backstop = _CpuBackstop(call_timeout) if backstop else None
        self.progress = None
        self.started = 0
        signal.signal(signal.SIGPROF, _on_sigprof)

    def compile(self, source):
        code = self.codes.get(source)
        if code is None:
            if len(self.codes) > 512:
                self.codes.clear()
            code = compile(source, "<program>", "exec")
            self.codes[source] = code
        return code

    def _timed(self, fn, *args, **kwargs):
        """Call under the CPU timer; returns (status, value)."""
        global _armed, _expired
        _expired = False
        self.started += 1
        if self.progress is not None:
            self.progress[0] = self.started
        if self.backstop is not None:
            self.backstop.arm()
        signal.signal(signal.SIGPROF, _on_sigprof)  # a program may have replaced it in an earlier call
        late = "timeout", "call exceeded %gs of CPU time" % self.call_timeout
        start = _cpu_time()
        try:
            try:
                _armed = True
                signal.setitimer(signal.ITIMER_PROF, self.call_timeout)
                try:
                    value = fn(*args, **kwargs)
                finally:
                    _armed = False
                    signal.setitimer(signal.ITIMER_PROF, 0)
            except _CallTimeout:
                return late
            except RecursionError as exc:
                return "limit", _describe(exc)
            except MemoryError as exc:
                return "limit", _describe(exc)
            except BaseException as exc:  # SystemExit, KeyboardInterrupt, ...: the program's error
                if _expired or _cpu_time() - start > self.call_timeout:
                    return late
                return "error", _describe(exc)
        except _CallTimeout:  # the timer fired inside our own bookkeeping
            return late
        # The program swallowed the timeout, or ignored SIGPROF, and returned anyway.
        if _expired or _cpu_time() - start > self.call_timeout:
            return late
        return "ok", value

    def run_job(self, source, entry_point, calls):
        """Returns the JSON text of the job's reply: one ``[status, value|message]`` per call."""
        sys.setrecursionlimit(RECURSION_LIMIT)
        n = len(calls)
        try:
            code = self.compile(source)
        except BaseException as exc:
            return json.dumps([["error", _describe(exc)]] * n)
        env = {"__builtins__": builtins, "__name__": "__cf_program__"}
        status, value = self._timed(exec, code, env)
        if status != "ok":
            return json.dumps([[status, value]] * n)
        fn = env.get(entry_point)
        if not callable(fn):
            return json.dumps([["error", "NameError: entry point %r is not defined" % entry_point]] * n)
        parts = []
        budget = self.output_bytes
        for kwargs in calls:
            status, value = self._timed(fn, **kwargs)
            if status == "ok":
                try:
                    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
                except MemoryError:
                    parts.append('["limit","result too large"]')
                    continue
                except (TypeError, ValueError, RecursionError) as exc:
                    parts.append(json.dumps(["limit", "result is not JSON: " + _describe(exc)]))
                    continue
                if len(text) > budget:
                    parts.append('["limit","result exceeds the output limit"]')
                    continue
                budget -= len(text)
                parts.append('["ok",' + text + "]")
            else:
                parts.append(json.dumps([status, value]))
            sys.setrecursionlimit(RECURSION_LIMIT)
        return "[" + ",".join(parts) + "]"


def exit_with_parent(parent_pid):
    """Exit at once when ``parent_pid`` dies (a daemon thread waits on its pidfd)."""
    try:
        fd = os.pidfd_open(parent_pid)
    except (AttributeError, OSError):
        return
    if os.getppid() != parent_pid:  # died before we got here
        os._exit(0)

    def watch():
        select.select([fd], [], [])
        os._exit(0)

    import threading

    threading.Thread(target=watch, name="cf-parent-watch", daemon=True).start()


def main():
    config = json.loads(sys.argv[1])
    exit_with_parent(int(config["parent_pid"]))
    for path in config.get("paths", ()):
        if path not in sys.path:
            sys.path.append(path)
    # Keep the protocol on private fds; the program's print() goes to the null device.
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _apply_memory_limit(int(config["memory_bytes"]))
    runner = Runner(float(config["call_timeout"]), int(config["output_bytes"]))
    # Progress word shared with the parent: 1 + index of the job now running in this batch.
    # If the worker dies or stalls, the parent reads the culprit from it instead of re-running.
    progress = memoryview(mmap.mmap(int(config["progress_fd"]), 8)).cast("I")
    os.close(int(config["progress_fd"]))
    _write_all(wfd, _frame(json.dumps({"ready": os.getpid()})))
    while True:
        header = _read_exact(rfd, 4)
        if header is None:
            return
        body = _read_exact(rfd, _HEADER.unpack(header)[0])
        if body is None:
            return
        request = json.loads(body)
        sources = request["src"]
        out = []
        last = time.monotonic()
        for i, (src_index, entry_point, calls) in enumerate(request["jobs"]):
            progress[0] = i + 1
            out.append(_frame(runner.run_job(sources[src_index], entry_point, calls)))
            now = time.monotonic()
            if now - last >= FLUSH_S:
                _write_all(wfd, b"".join(out))
                out = []
                last = now
        if out:
            _write_all(wfd, b"".join(out))


if __name__ == "__main__":
    main()
