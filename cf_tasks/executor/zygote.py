"""Isolated tier: a lean pre-started fork server that runs each job in an isolated child.

Started by :mod:`cf_tasks.executor.sandbox` as a script (``python -I -S zygote.py CONFIG``)
with a fixed, minimal environment: nothing of the caller's environment or memory is ever in
this process (exec replaced it). Standard library only; it never runs a program itself.

Three kinds of process:

1. The supervisor (this script's process) compiles the seccomp filter, forks the server,
   writes the server's uid/gid maps, then only waits: on a pidfd of the caller, and for the
   server to exit. When the caller dies (SIGKILL included) it kills the server at once,
   removes the host temp folder and exits; when the server dies it exits too, so the caller
   sees EOF.
2. The server (``PR_SET_PDEATHSIG``: dies with the supervisor) enters a user namespace of its
   own plus network and mount namespaces with a private read-only root (``hardening.py``),
   keeps only the capabilities it needs to start jobs, and serves batches from the caller's
   pipe. It also watches that pipe while a batch runs: EOF means the caller is gone.
3. One child per job, cloned into a new PID namespace (it is PID 1 and sees no other
   process). Its scratch folder is its slot's own tmpfs (``/scratch/slot-K``; replaced after a
   job that wrote to it). The child gets ``PR_SET_PDEATHSIG``, its own session, its own uid
   where a uid range is mapped (root callers), no capabilities, rlimits, a Landlock domain of
   its own (only its scratch is writable; no sibling, not the server, can be signalled), the
   seccomp allowlist, and only its result pipe open; then it runs the job with the trusted
   worker's ``Runner`` and writes the JSON reply.

The server enforces from outside: the job's wall-clock deadline, the CPU time of each call
(the kernel's CPU clock of the child, attributed to calls through a one-word progress memfd
that only that child maps), and the reply size; it reaps the child and forwards the raw reply,
exit status and wall time to the parent, which computes every verdict. Without user
namespaces (``mode == "plain"``), jobs are forked without namespaces and each gets a scratch
folder under the host temp folder; Landlock then keeps jobs out of each other's folders.

Protocol with the parent: 4-byte big-endian length frames. Request:
``{"jobs": [[source, entry_point, [kwargs, ...], timeout_s|null], ...]}``. Replies, per job in
completion order, a meta frame ``{"i": index, "code": exit status (negative = signal),
"reason": "deadline"|"cpu"|"oversize"|null, "wall": seconds}`` then a payload frame (the raw reply).
"""

import ctypes
import gc
import importlib.util
import json
import mmap
import os
import resource
import select
import signal
import struct
import sys
import time

HEADER = struct.Struct(">I")
PLAIN_SCRATCH_MB = 64


def _load(name):
    """A sibling module of this script (``-I`` keeps our folder off ``sys.path``)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location("cf_executor_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clamped(limit, value):
    """``value``, lowered to the hard limit (an unprivileged process cannot raise it)."""
    hard = resource.getrlimit(limit)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def _set(limit, value):
    resource.setrlimit(limit, (_clamped(limit, value),) * 2)


def _remove_tree(path):
    """``shutil.rmtree`` without importing shutil (and its compression modules) into every job;
    a program may have chmod-ed its folders to 000, so owner access is restored first."""
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            _ignore(os.unlink, os.path.join(root, name))
        for name in dirs:
            _ignore(os.rmdir, os.path.join(root, name))
    _ignore(os.rmdir, path)


def _ignore(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


def _compile_seccomp(hd):
    """The seccomp filter, compiled in a throwaway child: pyseccomp, libseccomp and the helper
    processes of ``ctypes.util.find_library`` never enter the server (nor every job's memory)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            bpf, line = hd.seccomp_program()
            data = json.dumps({"bpf": bpf.hex() if bpf else None, "line": line}).encode()
            while data:
                data = data[os.write(w, data):]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    try:
        out = json.loads(b"".join(chunks))
    except ValueError:
        return None, "unavailable: the filter compiler died"
    return (bytes.fromhex(out["bpf"]) if out["bpf"] else None), out["line"]


class Server:
    """The fork server: runs batches, one isolated child per job, ``parallel`` at a time."""

    def __init__(self, config, report, mode, worker, hd, bpf):
        self.config = config
        self.report = report
        self.mode = mode
        self.worker = worker
        self.hd = hd
        self.runner = worker.Runner(float(config["call_timeout"]), int(config["output_bytes"]), backstop=False)
        self.parallel = max(1, int(config["parallel"]))
        self.cap = int(config["output_bytes"]) + 4096
        self.call_cpu_limit = float(config["call_timeout"]) * 1.25 + 0.1
        self.scratch_root = "/scratch" if mode == "namespaces" else config["scratch_root"]
        self.job_uids = mode == "namespaces" and os.geteuid() == 0 and config["outer_uid"] == 0
        self.landlock = hd.JobLandlock([p for p in config["binds"] if not p.startswith("/dev/")])
        self.bpf = None
        if bpf:
            self._bpf_buf = ctypes.create_string_buffer(bpf, len(bpf))
            self.bpf = hd.SockFprog(len(bpf) // 8, ctypes.addressof(self._bpf_buf))
        # Per job: the same limits, clamped once here to the hard limits the server has
        self.rlimits = [(r, _clamped(r, v)) for r, v in ((resource.RLIMIT_AS, int(config["memory_bytes"])),
                                                        (resource.RLIMIT_FSIZE, int(config["fsize_bytes"])),
                                                        (resource.RLIMIT_CORE, 0))]
        self.late_rlimits = [(r, _clamped(r, v)) for r, v in ((resource.RLIMIT_NOFILE, int(config["nofile"])),
                                                             (resource.RLIMIT_NPROC, 0))]
        self.exited = {}
        self.free_slots = list(range(self.parallel))
        self.batch_fd = None
        try:
            self.pidfd = os.pidfd_open(os.getpid())  # a job polls it: readable once the server is gone
        except OSError:
            self.pidfd = None
        self.clone_flags, self.clone_error = self._probe_clone()
        # Warm up in the server what every child would otherwise initialise on its own (the
        # AST types behind compile(), the JSON encoder): our own constant program, run here once.
        self.runner.run_job("def f():\n    return [0.5, 'x', None]\n", "f", [{}])
        # Children are forks: keep the collector from touching (and so copying) every page.
        gc.freeze()

    def _probe_clone(self):
        """PID namespace per job if the kernel allows it here: (flags or None, why not)."""
        if self.mode != "namespaces":
            return None, None
        try:
            pid = self.hd.clone_job(self.hd.CLONE_NEWPID)
        except OSError as exc:
            return None, "clone(CLONE_NEWPID) failed (%s)" % exc
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return self.hd.CLONE_NEWPID, None

    # --- the child -------------------------------------------------------------------------
    def _child(self, wfd, pfd, slot, job):
        source, entry_point, calls = job[0], job[1], job[2]
        hd, cfg = self.hd, self.config
        uid = self._slot_uid(slot)
        scratch = self._slot_path(slot)
        if self.mode != "namespaces":
            os.mkdir(scratch, 0o700)
        os.setsid()
        if self.job_uids:  # from namespace root to another uid: every capability goes with it
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        else:
            hd.drop_all_capabilities()
        # After the uid change, which clears both: die with the server, and be non-dumpable.
        hd.libc.prctl(hd.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if self.pidfd is not None and select.select([self.pidfd], [], [], 0)[0]:
            os._exit(0)  # the server died before the line above took effect
        hd.libc.prctl(hd.PR_SET_DUMPABLE, 0, 0, 0, 0)
        cpu = min(float(cfg["job_timeout"]), len(calls) * float(cfg["call_timeout"]) + 1.0)
        _set(resource.RLIMIT_CPU, int(cpu) + 2)
        for limit, value in self.rlimits:
            resource.setrlimit(limit, (value, value))
        os.chdir(scratch)
        if self.landlock.abi >= 1:
            self.landlock.restrict(scratch)
        self.runner.progress = memoryview(mmap.mmap(pfd, 8)).cast("I")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.dup2(wfd, 3)
        os.closerange(4, 1 << 16)
        for limit, value in self.late_rlimits:
            resource.setrlimit(limit, (value, value))
        if self.bpf is not None:
            hd.load_seccomp(self.bpf)
        os.environ["HOME"] = os.environ["TMPDIR"] = scratch
        del job, cfg
        text = self.runner.run_job(source, entry_point, calls)
        self.worker._write_all(3, text.encode("utf-8"))
        os._exit(0)

    def _slot_path(self, slot):
        return os.path.join(self.scratch_root, "slot-%d" % slot)

    def _prepare_slots(self):
        """Namespaces: one tmpfs per slot, owned by the slot's uid (the server alone writes /scratch)."""
        if self.mode == "namespaces":
            for slot in range(self.parallel):
                self.hd.mount_scratch(self._slot_path(slot), int(self.config["scratch_mb"]), self._slot_uid(slot))

    def _slot_uid(self, slot):
        return 1 + slot if self.job_uids else 0

    def _empty_slot(self, slot):
        """Nothing of a job may reach the next one: a used tmpfs is replaced, a plain folder removed."""
        path = self._slot_path(slot)
        if self.mode == "namespaces":
            try:
                with os.scandir(path) as entries:
                    used = next(entries, None) is not None
            except OSError:
                used = True
            if used:
                self.hd.mount_scratch(path, int(self.config["scratch_mb"]), self._slot_uid(slot))
        else:
            _remove_tree(path)

    def _spawn(self, index, job):
        slot = self.free_slots.pop()
        rfd, wfd = os.pipe()
        pfd = os.memfd_create("cf-job-progress")
        os.ftruncate(pfd, 8)
        pid = self.hd.clone_job(self.clone_flags) if self.clone_flags else os.fork()
        if pid == 0:
            try:
                os.close(rfd)
                self._child(wfd, pfd, slot, job)
            finally:
                os._exit(70)
        os.close(wfd)
        os.set_blocking(rfd, False)
        try:
            pidfd = os.pidfd_open(pid)  # readable when the child exits: no polling for exits
        except (AttributeError, OSError):
            pidfd = None
        timeout = float(self.config["job_timeout"])
        if len(job) > 3 and job[3] is not None:
            timeout = max(0.0, min(timeout, float(job[3])))
        now = time.monotonic()
        return {"i": index, "pid": pid, "fd": rfd, "pfd": pfd, "pidfd": pidfd, "buf": bytearray(), "eof": False,
                "reason": None, "start": now, "deadline": now + timeout, "slot": slot,
                "clock": (~pid << 3) | 2, "count": -1, "call_cpu0": 0.0}

    def _kill(self, child, reason):
        if child["reason"] is None:
            child["reason"] = reason
        if child["pid"] not in self.exited:  # not reaped: the pid (and group id) is still ours
            for kill in (os.killpg, os.kill):
                try:
                    kill(child["pid"], signal.SIGKILL)
                except OSError:
                    pass

    def _watch_cpu(self, child):
        """Kill a child whose current call has used more CPU than a call may (read from outside)."""
        try:
            count = int.from_bytes(os.pread(child["pfd"], 4, 0), sys.byteorder)
            cpu = time.clock_gettime(child["clock"])
        except OSError:
            return
        if count != child["count"]:
            child["count"], child["call_cpu0"] = count, cpu
        elif cpu - child["call_cpu0"] > self.call_cpu_limit:
            self._kill(child, "cpu")

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
        for fd in (child["fd"], child["pfd"], child["pidfd"]):
            if fd is not None:
                os.close(fd)
        code = self.exited.pop(child["pid"])
        self._empty_slot(child["slot"])
        self.free_slots.append(child["slot"])
        meta = json.dumps({"i": child["i"], "code": code, "reason": child["reason"],
                           "wall": round(time.monotonic() - child["start"], 6)}).encode()
        payload = b"" if child["reason"] == "oversize" else bytes(child["buf"])
        out.append(HEADER.pack(len(meta)) + meta + HEADER.pack(len(payload)) + payload)

    def run_batch(self, jobs, wfd):
        todo = list(enumerate(jobs))
        todo.reverse()
        active = []
        poller = select.poll()
        poller.register(self.batch_fd, 0)  # only POLLHUP/POLLERR: the caller closed its end (or died)
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
            if self.batch_fd in ready:  # nobody will read the results: stop everything now
                for child in active:
                    self._kill(child, "deadline")
                os._exit(0)
            self._reap()
            now = time.monotonic()
            out = []
            for child in list(active):
                pid = child["pid"]
                if not child["eof"] and (child["fd"] in ready or pid in self.exited):
                    self._drain(child)
                    if child["eof"]:
                        poller.unregister(child["fd"])
                if pid not in self.exited:
                    if now > child["deadline"]:
                        self._kill(child, "deadline")
                    else:
                        self._watch_cpu(child)
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

    def self_test(self):
        """Run one job through the real child path; returns an error message or None."""
        r, w = os.pipe()
        try:
            self.run_batch([["import os\ndef f():\n    return os.getpid()\n", "f", [{}], None]], w)
            os.close(w)
            w = None
            data = os.read(r, 1 << 16)
        finally:
            for fd in (r, w):
                if fd is not None:
                    os.close(fd)
        (n,) = HEADER.unpack_from(data)
        meta = json.loads(data[4:4 + n])
        payload = data[8 + n:]
        if meta["code"] != 0 or not payload.startswith(b'[["ok"'):
            return "a probe job failed (exit status %s, reply %r)" % (meta["code"], payload[:200])
        if self.clone_flags and json.loads(payload)[0][1] != 1:
            return "a probe job was not PID 1 of its own PID namespace"
        return None

    def serve(self, rfd, wfd):
        self.batch_fd = os.dup(rfd)
        self._prepare_slots()
        error = self.self_test()
        hello = json.dumps({"ready": error is None, "error": error, "report": self.report}).encode()
        self.worker._write_all(wfd, HEADER.pack(len(hello)) + hello)
        while error is None:
            header = self.worker._read_exact(rfd, 4)
            if header is None:
                return
            body = self.worker._read_exact(rfd, HEADER.unpack(header)[0])
            if body is None:
                return
            jobs = json.loads(body)["jobs"]
            gc.freeze()  # the batch's objects too: a child's first collection would copy their pages
            self.run_batch(jobs, wfd)
            del jobs
            gc.unfreeze()


def run_server(config, mode_report, mode, worker, hd, bpf, rfd, wfd):
    """In the server process, after the namespaces: privileges, then serve until EOF."""
    report = dict(mode_report)
    if mode == "namespaces":
        hd.set_capabilities(hd.SERVER_CAPS)
    elif config["outer_uid"] == 0:
        os.makedirs(config["scratch_root"], exist_ok=True)
        os.chmod(config["scratch_root"], 0o711)
        hd.drop_to_nobody(config["scratch_root"])
    hd.check(hd.libc.prctl(hd.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    server = Server(config, report, mode, worker, hd, bpf)
    report.update(layer_report(server, config))
    server.serve(rfd, wfd)


def layer_report(server, config):
    ns = server.mode == "namespaces"
    root = config["outer_uid"] == 0
    out = {
        "pid_namespace_per_job": ("enforced (each job is PID 1 of a PID namespace of its own: no other process "
                                  "is visible or can be signalled)") if server.clone_flags else
                                 "unavailable: %s (jobs share the server's PID namespace)" % (
                                     server.clone_error or "no user namespace"),
        "scratch_per_job": ("enforced (each job slot has its own %d MiB tmpfs, replaced after a job that wrote "
                            "to it: nothing persists between jobs; the scratch root is read-only to jobs)"
                            % config["scratch_mb"]) if ns else
                           ("enforced (an empty folder per job under the host temp folder, removed after the job; "
                            "Landlock keeps other jobs out)" if server.landlock.abi >= 1 else
                            "unavailable: no mount namespace and no Landlock"),
        "uid_per_job": ("enforced (job in slot k runs as uid k+1 of the namespace, %#x+k outside)"
                        % server.hd.JOB_UID_BASE) if server.job_uids else
                       ("not used (a caller that is not root can map one uid only; PID namespaces and Landlock "
                        "keep jobs apart)" if ns and server.clone_flags else "unavailable: no user namespace"),
        "capabilities": "enforced (jobs hold none; the server keeps %s inside its own namespace)" % (
            "SYS_ADMIN, SETUID, SETGID, KILL and DAC_READ_SEARCH" if ns else "none"),
        "no_new_privs": "enforced",
        "landlock": server.landlock.status,
        "nproc": ("enforced (RLIMIT_NPROC=0 and a uid of its own: no fork, spawn or thread)" if server.job_uids else
                  "enforced (RLIMIT_NPROC=0: no fork, spawn or thread)" if ns or not root else
                  "enforced (RLIMIT_NPROC=0 as nobody)"),
    }
    return out


def _start_server(config, worker, hd, bpf, seccomp_line, rfd, wfd):
    """Fork the server and write its id maps; retry without namespaces if mapping fails."""
    outer = os.getpid()
    failure = None
    for attempt in (0, 1):
        up_r, up_w = os.pipe()  # server -> supervisor: "m" = please write my id maps
        down_r, down_w = os.pipe()  # supervisor -> server: "k" written, "f" failed
        harden = bool(config.get("harden", True)) and attempt == 0
        pid = os.fork()
        if pid == 0:
            try:
                os.close(up_r)
                os.close(down_w)
                hd.libc.prctl(hd.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != outer:
                    os._exit(0)

                def request_maps():
                    os.write(up_w, b"m")
                    if os.read(down_r, 1) != b"k":
                        os._exit(3)  # the supervisor retries without namespaces

                cfg = dict(config, harden=harden)
                if harden:
                    try:
                        report, mode = hd.isolate_server(cfg, request_maps)
                    except OSError as exc:  # half-way into namespaces: start over without them
                        os.write(up_w, b"e" + str(exc).encode("utf-8", "replace")[:400])
                        os._exit(3)
                else:
                    why = "unavailable: " + (failure or "disabled by configuration")
                    report, mode = dict.fromkeys(("user_namespace", "network_namespace", "filesystem"), why), "plain"
                os.close(up_w)
                os.close(down_r)
                report["seccomp"] = seccomp_line
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                run_server(cfg, report, mode, worker, hd, bpf, rfd, wfd)
            finally:
                os._exit(0)
        os.close(up_w)
        os.close(down_r)
        try:
            while True:
                msg = os.read(up_r, 1)
                if msg == b"e":
                    failure = "namespaces failed (%s)" % os.read(up_r, 400).decode("utf-8", "replace")
                    break
                if msg != b"m":
                    break  # the server is past its namespace step (or died)
                try:
                    hd.write_id_maps(pid, config["outer_uid"], os.getegid(), int(config["parallel"]))
                    os.write(down_w, b"k")
                except OSError as exc:
                    failure = "could not map ids (%s)" % exc
                    os.write(down_w, b"f")
        finally:
            os.close(up_r)
            os.close(down_w)
        if failure is None or attempt == 1:
            return pid
        os.waitpid(pid, 0)
    return pid


def main():
    config = json.loads(sys.argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    caller = int(config["parent_pid"])
    if os.getppid() != caller:  # the caller died before we started
        os._exit(0)
    config["outer_uid"] = os.geteuid()
    for path in config.get("paths", ()):  # read-only site-packages (e.g. numpy), see worker.py on -S
        if path not in sys.path:
            sys.path.append(path)
    worker = _load("worker")
    hd = _load("hardening")
    bpf, seccomp_line = _compile_seccomp(hd) if config.get("seccomp", True) else \
        (None, "unavailable: disabled by configuration")
    rfd, wfd = os.dup(0), os.dup(1)
    server = _start_server(config, worker, hd, bpf, seccomp_line, rfd, wfd)
    poller = select.poll()
    try:
        poller.register(os.pidfd_open(caller), select.POLLIN)  # readable when the caller exits
    except (AttributeError, OSError):  # kernel < 5.3: the request pipe hangs up when the caller dies
        poller.register(os.dup(0), 0)
    # The supervisor holds no other pipe end, so the caller sees EOF when the server dies.
    for fd in (rfd, wfd, 0, 1):
        os.close(fd)
    while True:
        caller_gone = bool(poller.poll(200))
        if caller_gone:
            try:
                os.kill(server, signal.SIGKILL)  # its jobs die with it (PR_SET_PDEATHSIG)
            except OSError:
                pass
        pid, status = os.waitpid(server, 0 if caller_gone else os.WNOHANG)
        if pid:
            break
    _remove_tree(config["scratch_root"])
    os._exit(max(0, os.waitstatus_to_exitcode(status)))


if __name__ == "__main__":
    main()
