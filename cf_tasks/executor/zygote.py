"""Untrusted tier: a lean pre-started fork server that runs each job in an isolated child.

Started by :mod:`cf_tasks.executor.sandbox` as a script (``python -I -S zygote.py CONFIG``),
so it is small (forking is cheap, anchors §1.3) and independent of the caller's start
method. Standard library only; it never runs a program itself.

Start-up (once, best effort, every layer recorded in the isolation report; the layers
live in ``hardening.py``):

1. ``unshare`` user + network + mount + PID namespaces (no root needed where unprivileged
   user namespaces are allowed; root skips the user namespace): no network at all (not
   even the host's loopback), and a private mount table.
2. A new root file system: a read-only tmpfs holding read-only bind mounts of the system
   and Python folders only, a few devices and a size-limited scratch tmpfs; ``pivot_root``
   into it and detach the old root, so the caller's files (home, project, temp files) do
   not exist for the program.
3. Running as root: drop to ``nobody`` so that file permissions and ``RLIMIT_NPROC``
   apply (root bypasses both).
4. Drop every capability, set ``PR_SET_NO_NEW_PRIVS``, restrict the file system (and, on
   newer kernels, TCP and signals) with Landlock, and, when ``pyseccomp`` is importable,
   compile a seccomp deny-list once (each child loads it with one ``prctl``).
5. Fork the server, which is PID 1 of the new PID namespace: its death kills every
   process in the namespace, and signals from inside cannot kill it.

Per job the server forks a child that calls ``setsid``, becomes non-dumpable (no ptrace by
siblings), sets rlimits (CPU, AS, FSIZE, NOFILE, NPROC=0, CORE=0), moves into an empty
private scratch folder, closes every fd except its result pipe (stdin, stdout and stderr
go to the null device), loads the seccomp filter, and runs the job with the trusted
worker's ``Runner`` in the server's scrubbed environment, writing the JSON reply. The
server enforces the job's wall-clock deadline with ``killpg(SIGKILL)``, caps the reply
size, reaps the child, empties its scratch folder, and forwards the raw reply and exit
status to the parent, which computes every verdict.

Protocol with the parent: 4-byte big-endian length frames. Request:
``{"jobs": [[source, entry_point, [kwargs, ...]], ...]}``. Replies, per job in completion
order, a meta frame ``{"i": index, "code": exit status (negative = signal), "reason":
"deadline"|"oversize"|null}`` followed by a payload frame (the child's raw bytes).
"""

import ctypes
import gc
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time

HEADER = struct.Struct(">I")


def _make_removable(path):
    """A program may chmod its folders to 000; restore owner access before removing them."""
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass


def _load(name):
    """A sibling module of this script (``-I`` keeps our folder off ``sys.path``)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location("cf_executor_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set(limit, value):
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(limit, (value, value))


class Server:
    """The fork server (PID 1 of the job namespace when namespaces are available)."""

    def __init__(self, config, report, scratch_root, worker, hardening, bpf=None):
        self.config = config
        self.report = report
        self.scratch_root = scratch_root
        self.worker = worker
        self.hd = hardening
        self.runner = worker.Runner(float(config["call_timeout"]), int(config["output_bytes"]))
        self.parallel = max(1, int(config["parallel"]))
        self.cap = int(config["output_bytes"]) + 4096
        self.is_init = os.getpid() == 1
        self.exited = {}
        self.free_slots = []
        self.bpf = None
        if bpf:
            self._bpf_buf = ctypes.create_string_buffer(bpf, len(bpf))
            self.bpf = hardening.SockFprog(len(bpf) // 8, ctypes.addressof(self._bpf_buf))
        os.environ.clear()  # children inherit this scrubbed environment
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        # Children are forks: keep the collector from touching (and so copying) every page.
        gc.freeze()

    # --- the child -------------------------------------------------------------------------
    def _child(self, wfd, scratch, job):
        source, entry_point, calls = job
        os.setsid()
        hd = self.hd
        hd.libc.prctl(hd.PR_SET_DUMPABLE, 0, 0, 0, 0)
        cfg = self.config
        cpu = min(float(cfg["job_timeout"]), len(calls) * float(cfg["call_timeout"]) + 1.0)
        cpu_hard = int(cpu) + 2
        _set(resource.RLIMIT_CPU, cpu_hard)
        self.runner.backstop.hard = cpu_hard
        self.runner.backstop.soft = None
        _set(resource.RLIMIT_AS, int(cfg["memory_bytes"]))
        _set(resource.RLIMIT_FSIZE, int(cfg["fsize_bytes"]))
        _set(resource.RLIMIT_CORE, 0)
        os.chdir(scratch)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.dup2(wfd, 3)
        os.closerange(4, 1 << 16)
        _set(resource.RLIMIT_NOFILE, int(cfg["nofile"]))
        _set(resource.RLIMIT_NPROC, 0)  # ignored only by real root (see the report)
        if self.bpf is not None:
            hd.check(hd.libc.prctl(hd.PR_SET_SECCOMP, hd.SECCOMP_MODE_FILTER, ctypes.byref(self.bpf), 0, 0), "seccomp")
        os.environ["HOME"] = os.environ["TMPDIR"] = scratch  # the rest was scrubbed in the server
        del job, cfg
        text = self.runner.run_job(source, entry_point, calls)
        self.worker._write_all(3, text.encode("utf-8"))
        os._exit(0)

    def _scratch(self):
        """An empty private folder: a reused slot (emptied after its last job) or a new one."""
        if self.free_slots:
            return self.free_slots.pop()
        # Unguessable names under a non-listable root: concurrent jobs cannot find each other's.
        scratch = os.path.join(self.scratch_root, "slot-" + os.urandom(12).hex())
        os.mkdir(scratch, 0o700)
        return scratch

    def _release_scratch(self, scratch):
        try:
            os.chmod(scratch, 0o700)
            with os.scandir(scratch) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        _make_removable(entry.path)
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            return  # abandoned; a fresh slot will be made
        self.free_slots.append(scratch)

    def _spawn(self, index, job):
        scratch = self._scratch()
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                self._child(wfd, scratch, job)
            finally:
                os._exit(70)
        os.close(wfd)
        os.set_blocking(rfd, False)
        try:
            pidfd = os.pidfd_open(pid)  # readable when the child exits: no polling for exits
        except (AttributeError, OSError):
            pidfd = None
        return {"i": index, "pid": pid, "fd": rfd, "pidfd": pidfd, "buf": bytearray(), "eof": False, "reason": None,
                "deadline": time.monotonic() + float(self.config["job_timeout"]), "scratch": scratch}

    def _kill(self, child, reason):
        if child["reason"] is None:
            child["reason"] = reason
        if child["pid"] not in self.exited:  # not reaped: the group id is still ours
            try:
                os.killpg(child["pid"], signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(child["pid"], signal.SIGKILL)
            except OSError:
                pass

    def _drain(self, child):
        while True:
            try:
                chunk = os.read(child["fd"], 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                child["eof"] = True
                return
            child["buf"] += chunk
            if len(child["buf"]) > self.cap:
                self._kill(child, "oversize")
                child["eof"] = True
                return

    def _reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)

    def _finish(self, child, out):
        os.close(child["fd"])
        if child["pidfd"] is not None:
            os.close(child["pidfd"])
        code = self.exited.pop(child["pid"])
        self._release_scratch(child["scratch"])
        meta = json.dumps({"i": child["i"], "code": code, "reason": child["reason"]}).encode()
        payload = b"" if child["reason"] == "oversize" else bytes(child["buf"])
        out.append(HEADER.pack(len(meta)) + meta + HEADER.pack(len(payload)) + payload)

    def run_batch(self, jobs, wfd):
        todo = list(enumerate(jobs))
        todo.reverse()
        active = []
        poller = select.poll()
        while todo or active:
            while todo and len(active) < self.parallel:
                child = self._spawn(*todo.pop())
                active.append(child)
                poller.register(child["fd"], select.POLLIN | select.POLLHUP | select.POLLERR)
                if child["pidfd"] is not None:
                    poller.register(child["pidfd"], select.POLLIN)
            now = time.monotonic()
            wait = min(c["deadline"] for c in active) - now
            cap = 50 if all(c["pidfd"] is not None or not c["eof"] for c in active) else 2
            events = poller.poll(max(0, min(int(wait * 1000) + 1, cap)))
            ready = {fd for fd, _ in events}
            self._reap()
            now = time.monotonic()
            out = []
            for child in list(active):
                pid = child["pid"]
                if not child["eof"] and (child["fd"] in ready or pid in self.exited):
                    self._drain(child)
                    if child["eof"]:
                        poller.unregister(child["fd"])
                if pid not in self.exited and now > child["deadline"]:
                    self._kill(child, "deadline")
                if child["reason"] is not None and pid not in self.exited:
                    _, status = os.waitpid(pid, 0)  # killed: it dies now
                    self.exited[pid] = os.waitstatus_to_exitcode(status)
                if pid in self.exited:
                    if not child["eof"]:
                        self._drain(child)
                        poller.unregister(child["fd"])
                    if child["pidfd"] is not None:
                        poller.unregister(child["pidfd"])
                    active.remove(child)
                    self._finish(child, out)
            if out:
                self.worker._write_all(wfd, b"".join(out))
        if self.is_init:
            # Nothing of ours should be alive now; sweep anything that escaped its group.
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            self._reap()
            self.exited.clear()

    def serve(self, rfd, wfd):
        hello = json.dumps({"ready": True, "report": self.report}).encode()
        self.worker._write_all(wfd, HEADER.pack(len(hello)) + hello)
        while True:
            header = self.worker._read_exact(rfd, 4)
            if header is None:
                return
            body = self.worker._read_exact(rfd, HEADER.unpack(header)[0])
            if body is None:
                return
            self.run_batch(json.loads(body)["jobs"], wfd)


def main():
    config = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for path in config.get("paths", ()):  # read-only site-packages (e.g. numpy), see worker.py on -S
        if path not in sys.path:
            sys.path.append(path)
    worker = _load("worker")
    hardening = _load("hardening")
    report, scratch_root = hardening.harden(config)
    bpf = report.pop("seccomp_bpf")
    os.makedirs(scratch_root, exist_ok=True)
    os.chmod(scratch_root, 0o711)
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    pid = os.fork()  # in a new PID namespace this child is its PID 1
    if pid == 0:
        try:
            os.dup2(null, 0)
            os.dup2(null, 1)
            Server(config, report, scratch_root, worker, hardening, bpf).serve(rfd, wfd)
        finally:
            os._exit(0)
    # The outer process only waits, holding no pipe end, so the parent sees EOF when the
    # server dies.
    for fd in (rfd, wfd, 0, 1):
        try:
            os.close(fd)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    os._exit(max(0, os.waitstatus_to_exitcode(status)))


if __name__ == "__main__":
    main()
