"""Untrusted tier: a lean pre-started fork server that runs each job in an isolated child.

Started by :mod:`cf_tasks.executor.sandbox` as a script (``python -I -S zygote.py CONFIG``),
so it is small (forking is cheap, anchors §1.3) and independent of the caller's start
method. Standard library only; it never runs a program itself.

Start-up (once, best effort, every step recorded in the isolation report):

1. ``unshare`` user + network + mount + PID namespaces (no root needed where unprivileged
   user namespaces are allowed; root skips the user namespace): no network at all (not
   even the host's loopback), and a private mount table.
2. When running as root, drop to ``nobody`` after set-up so that file permissions and
   ``RLIMIT_NPROC`` apply (root bypasses both).
3. A new root filesystem: a read-only tmpfs holding read-only bind mounts of the system
   and Python directories only, ``/dev/null``-style devices and a size-limited scratch
   tmpfs; ``pivot_root`` into it and detach the old root, so the caller's files (home,
   project, temp files) do not exist for the program.
4. Drop every capability (bounding set and effective/permitted sets), set
   ``PR_SET_NO_NEW_PRIVS`` and, when ``pyseccomp`` is importable, compile a seccomp
   deny-list once (loaded by each child with one ``prctl``); then fork the server, which is PID 1 of the new PID namespace
   (its death kills every process in the namespace; signals from inside cannot kill it).

Per job the server forks a child that calls ``setsid``, becomes non-dumpable (no ptrace by
siblings), sets rlimits (CPU, AS, FSIZE, NOFILE, NPROC=0, CORE=0), loads the seccomp
filter, moves into a fresh scratch folder, scrubs the environment, closes every fd except its result pipe (stdin,
stdout, stderr go to the null device), then runs the job with the trusted worker's
``Runner`` and writes the JSON reply. The server enforces the job's wall-clock deadline
with ``killpg(SIGKILL)``, caps the reply size, reaps the child, empties its scratch folder,
and forwards the raw reply and exit status to the parent, which computes every verdict.

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
import platform
import resource
import select
import shutil
import signal
import struct
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 38, 47
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
NOBODY = 65534
HEADER = struct.Struct(">I")

libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def _mount(src, dst, fstype, flags, data):
    _check(libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                      data and data.encode()), "mount %s" % dst)


def _locked_flags(path):
    """Mount flags a bind mount inherits and must keep on remount (statvfs -> MS_*)."""
    f = os.statvfs(path).f_flag
    flags = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
                   (getattr(os, "ST_RELATIME", 4096), MS_RELATIME)):
        if f & st:
            flags |= ms
    return flags


def _build_root(binds, scratch_mb):
    """Private read-only root with only ``binds`` visible; returns the scratch folder path."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    new = "/tmp"  # any existing folder: the tmpfs only shadows it inside our mount namespace
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    os.umask(0o022)
    for path in binds:
        if not os.path.lexists(path):
            continue
        target = new + path
        if os.path.islink(path) and os.path.dirname(path) == "/":
            os.symlink(os.readlink(path), target)  # /bin -> usr/bin on merged-/usr systems
            continue
        if os.path.exists(target):
            continue  # already inside a folder bound earlier
        if os.path.isdir(path):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "w").close()
        _mount(path, target, None, MS_BIND | MS_REC, None)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(target), None)
    scratch = new + "/scratch"
    os.mkdir(scratch)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=%dm,mode=700" % scratch_mb)
    os.mkdir(new + "/.old")
    if SYS_PIVOT_ROOT is not None:
        _check(libc.syscall(SYS_PIVOT_ROOT, new.encode(), (new + "/.old").encode()), "pivot_root")
        os.chdir("/")
        _check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
        os.rmdir("/.old")
    else:
        os.chroot(new)
        os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    return "/scratch"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities():
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last cap
            break
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def _effective_capabilities():
    data = (_CapData * 2)()
    _check(libc.capget(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capget")
    return data[0].effective | (data[1].effective << 32) | data[0].permitted | (data[1].permitted << 32)


def harden(config):
    """Best-effort one-time isolation of this process; returns (report, scratch_root)."""
    report = {}
    # First: building the filter may start helper processes (ctypes.util.find_library), which
    # must not become PID 1 of the new PID namespace.
    report["seccomp_bpf"], report["seccomp"] = seccomp_program()
    scratch_root = config["scratch_root"]
    was_root = os.geteuid() == 0
    uid, gid = os.geteuid(), os.getegid()
    flags = 0
    if not config.get("harden", True):
        for key in ("user_namespace", "network_namespace", "pid_namespace", "filesystem"):
            report[key] = "unavailable: disabled by configuration"
    else:
        # Root has every privilege already (and would map to root inside a user namespace,
        # keeping access to root-owned files): it unshares directly and drops to nobody below.
        flags = CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID | (0 if was_root else CLONE_NEWUSER)
        if libc.unshare(flags) == 0:
            if was_root:
                report["user_namespace"] = "not needed (root: set-up as root, then dropped to nobody)"
            else:
                _write_file("/proc/self/setgroups", "deny")
                _write_file("/proc/self/uid_map", "0 %d 1" % uid)
                _write_file("/proc/self/gid_map", "0 %d 1" % gid)
                report["user_namespace"] = "enforced (uid %d outside)" % uid
            report["network_namespace"] = "enforced (no interfaces, no loopback)"
            report["pid_namespace"] = "enforced (server is PID 1; its death kills every job process)"
            try:
                scratch_root = _build_root(config["binds"], int(config["scratch_mb"]))
                report["filesystem"] = ("enforced (read-only private root with system and Python folders only; "
                                        "%d MiB scratch tmpfs)" % config["scratch_mb"])
            except OSError as exc:
                report["filesystem"] = "unavailable: %s" % exc
        else:
            reason = os.strerror(ctypes.get_errno())
            flags = 0
            for key in ("user_namespace", "network_namespace", "pid_namespace", "filesystem"):
                report[key] = "unavailable: unshare failed (%s)" % reason
    if was_root:
        # Drop to nobody so that file permissions and RLIMIT_NPROC apply (root bypasses both).
        try:
            for cap in range(64):
                if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:
                    break
            os.chown(scratch_root, NOBODY, NOBODY)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            report["uid"] = "enforced (root dropped to nobody, uid %d)" % NOBODY
        except OSError as exc:
            report["uid"] = "unavailable: could not drop root (%s)" % exc
    else:
        report["uid"] = "same user as the caller (uid %d)%s" % (
            uid, " mapped to root of its own user namespace" if flags & CLONE_NEWUSER else "")
    try:
        _drop_capabilities()
    except OSError as exc:
        report["capabilities"] = "unavailable: %s" % exc
    caps = _effective_capabilities()
    if caps == 0:
        report["capabilities"] = "enforced (none left; bounding set cleared)"
    else:
        report.setdefault("capabilities", "unavailable: capabilities %#x remain" % caps)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        report["no_new_privs"] = "enforced"
    else:
        report["no_new_privs"] = "unavailable: %s" % os.strerror(ctypes.get_errno())
    report["nproc"] = ("enforced (RLIMIT_NPROC=0: no fork, spawn or thread)" if os.geteuid() != 0
                       else "unavailable: running as root")
    return report, scratch_root


def _make_removable(path):
    """A program may chmod its folders to 000; restore owner access before removing them."""
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700)
            except OSError:
                pass


# System calls that kill a job child on sight (SIGSYS: the parent reports a crash): no
# program computing a value needs them. ``clone`` fails with EPERM instead (a library may try
# to start a thread and cope), and ``clone3`` with ENOSYS so libc falls back to ``clone``.
# Defence in depth on top of the namespaces and RLIMIT_NPROC, and the only network barrier
# where namespaces are unavailable.
SECCOMP_DENY = (
    "execve", "execveat", "fork", "vfork", "socket", "socketpair", "ptrace",
    "process_vm_readv", "process_vm_writev", "kill", "tkill", "tgkill", "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "bpf", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "setsid", "setpgid", "personality", "io_uring_setup",
    "open_by_handle_at", "name_to_handle_at", "init_module", "finit_module", "kexec_load",
)
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program():
    """Compile the deny-list once with pyseccomp (libseccomp) and export the raw BPF bytes.

    Returns (bpf bytes or None, report line). Children load the bytes with one ``prctl``
    instead of compiling a filter each (anchors §1.3: ~1 ms per child).
    """
    try:
        import errno

        import pyseccomp
    except Exception as exc:  # not installed, or libseccomp missing
        return None, "unavailable: pyseccomp not importable (%s); pip install pyseccomp" % type(exc).__name__
    try:
        filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
        kill = getattr(pyseccomp, "KILL_PROCESS", pyseccomp.KILL)
        denied = []
        for name in SECCOMP_DENY:
            try:
                filt.add_rule(kill, name)
                denied.append(name)
            except Exception:
                pass  # no such syscall on this architecture
        filt.add_rule(pyseccomp.ERRNO(errno.EPERM), "clone")
        filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
        fd = os.memfd_create("cf-seccomp")

        class _File:
            def fileno(self):
                return fd

        filt.export_bpf(_File())
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.pread(fd, size, 0)
        os.close(fd)
    except Exception as exc:
        return None, "unavailable: could not build the filter (%s)" % exc
    return data, ("enforced (%d syscalls kill the job: exec, fork, sockets, ptrace, signals, namespaces, "
                  "mounts...; clone fails)" % len(denied))


def _load_runner(path):
    spec = importlib.util.spec_from_file_location("cf_executor_worker", path)
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

    def __init__(self, config, report, scratch_root, worker, bpf=None):
        self.config = config
        self.report = report
        self.scratch_root = scratch_root
        self.worker = worker
        self.runner = worker.Runner(float(config["call_timeout"]), int(config["output_bytes"]))
        self.parallel = max(1, int(config["parallel"]))
        self.cap = int(config["output_bytes"]) + 4096
        self.is_init = os.getpid() == 1
        self.serial = 0
        self.exited = {}
        self.free_slots = []
        self.bpf = None
        if bpf:
            self._bpf_buf = ctypes.create_string_buffer(bpf, len(bpf))
            self.bpf = _SockFprog(len(bpf) // 8, ctypes.addressof(self._bpf_buf))
        os.environ.clear()  # children inherit this scrubbed environment
        os.environ.update({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        # Children are forks: keep the collector from touching (and so copying) every page.
        gc.freeze()

    # --- the child -------------------------------------------------------------------------
    def _child(self, wfd, scratch, job):
        source, entry_point, calls = job
        os.setsid()
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
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
        if os.geteuid() != 0:
            _set(resource.RLIMIT_NPROC, 0)
        if self.bpf is not None:
            _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self.bpf), 0, 0), "seccomp")
        os.environ["HOME"] = os.environ["TMPDIR"] = scratch  # the rest was scrubbed in the server
        del job, cfg
        gc.disable()  # short-lived: no collection pauses or copy-on-write of the server's objects
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
    worker = _load_runner(config["worker_path"])
    report, scratch_root = harden(config)
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
            Server(config, report, scratch_root, worker, bpf).serve(rfd, wfd)
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
