"""OS isolation layers of the sandbox (standard library + ctypes; loaded by ``zygote.py``).

The zygote runs with ``-I -S`` and must not import ``cf_tasks``, so it loads this file from its
own folder. Every layer is best effort and reports one line starting with ``enforced`` or
``unavailable: <why>``; the parent turns the lines into ``Executor.isolation_report()`` and a
warning naming whatever is missing. Two halves:

Server (once): a user namespace of its own (root is mapped to ``nobody`` outside, plus a range
of uids for jobs; another user is mapped to itself), network and mount namespaces, and a
private read-only root with the system and Python folders only (:func:`isolate_server`). The
server keeps the five capabilities it needs to start and clean up jobs (:data:`SERVER_CAPS`),
inside its own user namespace only. Without user namespaces it falls back to dropping root to
``nobody`` (:func:`drop_to_nobody`).

Job (per child, ``Server._child`` in the zygote): its own PID namespace (cloned together with
the process, :func:`clone_job`), its slot's own size-limited tmpfs as scratch folder (emptied
between jobs), its own uid where a range is mapped, no capabilities, a Landlock domain of its
own (:class:`JobLandlock`) and the seccomp allowlist compiled once here (:func:`seccomp_program`).
"""

import ctypes
import os
import platform

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 4, 24, 38, 47
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
NOBODY = 65534
JOB_UID_BASE = 0x70000000
"""Outside uids (and gids) of jobs when the caller is root: ``JOB_UID_BASE + slot``; no account uses them."""
CAP_DAC_READ_SEARCH, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN = 2, 5, 6, 7, 21
SERVER_CAPS = sum(1 << c for c in (CAP_DAC_READ_SEARCH, CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SYS_ADMIN))
"""Kept by the server, inside its own user namespace: start jobs in PID namespaces and mount
their scratch (SYS_ADMIN), give them uids (SETUID, SETGID), kill them (KILL), look into a used
scratch folder (DAC_READ_SEARCH)."""
libc = ctypes.CDLL(None, use_errno=True)
_pylibc = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL across clone (see clone_job)


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def _mount(src, dst, fstype, flags, data):
    check(libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                      data and data.encode()), "mount %s" % dst)


# --- the server's namespaces ------------------------------------------------------------------

def id_maps(uid, gid, job_uids):
    """uid_map and gid_map text for the server's user namespace (written by its parent).

    Root: namespace root is ``nobody`` outside and jobs get ``job_uids`` uids of their own.
    Anyone else: namespace root is the caller (the only mapping an unprivileged user may write).
    """
    if uid == 0:
        lines = "0 %d 1\n1 %d %d\n" % (NOBODY, JOB_UID_BASE, job_uids)
        return lines, lines
    return "0 %d 1\n" % uid, "0 %d 1\n" % gid


def write_id_maps(pid, uid, gid, job_uids):
    uid_map, gid_map = id_maps(uid, gid, job_uids)
    if uid != 0:
        _write_file("/proc/%d/setgroups" % pid, "deny")
    _write_file("/proc/%d/uid_map" % pid, uid_map)
    _write_file("/proc/%d/gid_map" % pid, gid_map)


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


def _build_root(binds, slots):
    """Private read-only root with only ``binds`` visible, and ``/scratch``: a tiny tmpfs with
    one mount point per job slot (the server mounts a tmpfs on each), writable by no job."""
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
    os.mkdir(new + "/scratch")
    _mount("tmpfs", new + "/scratch", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=711")
    for slot in range(slots):
        os.mkdir(new + "/scratch/slot-%d" % slot)
    os.mkdir(new + "/.old")
    if SYS_PIVOT_ROOT is None:
        raise OSError("pivot_root: unsupported architecture")
    check(libc.syscall(SYS_PIVOT_ROOT, new.encode(), (new + "/.old").encode()), "pivot_root")
    os.chdir("/")
    check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def isolate_server(config, request_id_maps):
    """Put the server into namespaces of its own; returns (report, mode).

    ``mode`` is ``"namespaces"`` (jobs get PID namespaces and a tmpfs per slot) or
    ``"plain"`` (no namespaces: jobs share the PID namespace and get a scratch folder each).
    ``request_id_maps()`` asks the parent to write our uid/gid maps (only it may write a
    map with more than one line) and returns once they are written. Raises ``OSError`` if
    isolation fails half-way (the caller then starts a server without namespaces).

    Root builds the private root first, as root (its namespace root will be ``nobody``
    outside and could not read ``/root/...``), then enters the user namespace and a copy of
    that mount namespace, whose mounts the kernel then locks. Other users need the user
    namespace first, to be allowed to mount at all.
    """
    keys = ("user_namespace", "network_namespace", "filesystem")
    if not config.get("harden", True):
        return dict.fromkeys(keys, "unavailable: disabled by configuration"), "plain"
    uid = os.geteuid()
    slots = int(config["parallel"])
    if uid == 0:
        check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _build_root(config["binds"], slots)
        check(libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")
    elif libc.unshare(CLONE_NEWUSER) != 0:
        why = "unavailable: unshare(CLONE_NEWUSER) failed (%s)" % os.strerror(ctypes.get_errno())
        return dict.fromkeys(keys, why), "plain"
    request_id_maps()
    if uid == 0:
        os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare(CLONE_NEWNET|CLONE_NEWNS)")
    if uid != 0:
        _build_root(config["binds"], slots)
    return {
        "user_namespace": "enforced (the server is root of its own user namespace, uid %d outside)"
                          % (NOBODY if uid == 0 else uid),
        "network_namespace": "enforced (no interfaces, no loopback)",
        "filesystem": "enforced (read-only private root with the system and Python folders only)",
    }, "namespaces"


def drop_to_nobody(scratch_root):
    """Plain mode as root: hand the scratch root to ``nobody`` and become it (no capabilities left)."""
    os.chown(scratch_root, NOBODY, NOBODY)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)


# --- capabilities -----------------------------------------------------------------------------

class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def set_capabilities(keep):
    """Clear the bounding and ambient sets; keep only the ``keep`` bit mask as permitted and effective."""
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: past the last
            break
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = keep & 0xFFFFFFFF
    data[1].effective = data[1].permitted = keep >> 32
    check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def drop_all_capabilities():
    data = (_CapData * 2)()
    check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


# --- per-job processes ------------------------------------------------------------------------

def clone_job(flags):
    """``fork()`` into new namespaces (``clone(flags | SIGCHLD)``): 0 in the child, its pid in the parent.

    Python's ``os.fork`` has no flags argument. Called through ``PyDLL`` the GIL stays held
    across the system call, so the single-threaded child resumes exactly where the parent
    was; only ``os.fork``'s at-fork hooks (for other threads, which the server has none of) are
    skipped. Raises ``OSError`` when the kernel refuses the namespaces.
    """
    if SYS_CLONE is None:
        raise OSError("clone: unsupported architecture")
    pid = _pylibc.syscall(SYS_CLONE, flags | 17, 0, 0, 0, 0)  # 17 = SIGCHLD
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, "clone: %s" % os.strerror(err))
    return pid


def mount_scratch(path, size_mb, uid):
    """A fresh tmpfs at ``path`` (a job slot's scratch folder): its own size and inode limits,
    owned by the slot's uid, so no job can fill another's disk. Replaces what was there."""
    if os.path.ismount(path):
        check(libc.umount2(path.encode(), MNT_DETACH), "umount %s" % path)
    os.makedirs(path, exist_ok=True)
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
           "size=%dm,nr_inodes=4096,mode=700,uid=%d,gid=%d" % (size_mb, uid, uid))


# --- seccomp ----------------------------------------------------------------------------------

# What a pure Python function needs, found by tracing the job child (imports of the standard
# library and numpy, file I/O in scratch, timers, sleeping, errors, allocation failures).
SECCOMP_ALLOW = (
    "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "close_range",
    "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs", "open", "openat", "openat2",
    "getdents64", "readlink", "readlinkat", "access", "faccessat", "faccessat2", "getcwd", "chdir", "fchdir",
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "symlink",
    "symlinkat", "link", "linkat", "ftruncate", "truncate", "fallocate", "fsync", "fdatasync", "flock",
    "fchmod", "fchmodat", "chmod", "utimensat", "umask", "sendfile", "copy_file_range",
    "dup", "dup2", "dup3", "poll", "ppoll", "select", "pselect6",
    "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "brk", "mbind",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "sigaltstack",
    "restart_syscall", "setitimer", "getitimer", "alarm", "pause",
    "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getrusage", "times",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
    "getresgid", "getpgrp", "getrandom", "futex", "sched_yield", "uname", "sysinfo", "set_robust_list",
    "rseq", "getrlimit", "setrlimit", "exit", "exit_group",
)
# Allowed only for the calling process itself (argument 0 == 0): no job may inspect or change
# another process (renice it, pin it, lower its CPU limit to kill it).
SECCOMP_SELF_ONLY = ("prlimit64", "sched_getaffinity", "getsid", "getpgid")
# Fail with EPERM unless harmless: ioctl only TCGETS (isatty), fcntl without F_SETOWN/F_SETSIG.
IOCTL_TCGETS = 0x5401
FCNTL_CMDS = (0, 1, 2, 3, 4, 1030)  # F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC
# Kill the job on sight (SIGSYS -> "crash"): escapes and reaching other processes. Everything
# else that is not allowed (mounts, keys, SysV IPC, setsid, ...) fails with EPERM, which costs
# no filter instructions.
SECCOMP_KILL = (
    "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "process_madvise", "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open",
    "pidfd_send_signal", "pidfd_getfd", "socket", "socketpair", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "unshare", "setns", "mount",
)
CLONE_THREAD = 0x00010000


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program():
    """Compile the allowlist once with pyseccomp (libseccomp) and export the raw BPF bytes.

    Returns (bpf bytes or None, report line). Children load the bytes with one ``prctl``.
    Anything not listed fails with EPERM (a library may probe and cope); the kill list and a
    process-creating ``clone`` end the job; a thread-creating ``clone`` fails with EAGAIN (as
    under RLIMIT_NPROC) and ``clone3`` with ENOSYS (so libc falls back to ``clone``).
    """
    try:
        import errno

        import pyseccomp
    except Exception as exc:  # not installed, or libseccomp missing
        return None, "unavailable: pyseccomp not importable (%s); pip install pyseccomp" % type(exc).__name__
    try:
        kill = pyseccomp.KILL_PROCESS
        filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno.EPERM))
        allowed = killed = 0
        for names, action, args in ((SECCOMP_ALLOW, pyseccomp.ALLOW, ()), (SECCOMP_KILL, kill, ()),
                                    (SECCOMP_SELF_ONLY, pyseccomp.ALLOW, (pyseccomp.Arg(0, pyseccomp.EQ, 0),))):
            for name in names:
                try:
                    filt.add_rule(action, name, *args)
                except Exception:
                    continue  # no such system call on this architecture
                if action == kill:
                    killed += 1
                else:
                    allowed += 1
        filt.add_rule(pyseccomp.ALLOW, "clock_gettime", pyseccomp.Arg(0, pyseccomp.LE, 15))  # no other's CPU clock
        filt.add_rule(pyseccomp.ALLOW, "ioctl", pyseccomp.Arg(1, pyseccomp.EQ, IOCTL_TCGETS))
        for cmd in FCNTL_CMDS:
            filt.add_rule(pyseccomp.ALLOW, "fcntl", pyseccomp.Arg(1, pyseccomp.EQ, cmd))
        filt.add_rule(pyseccomp.ERRNO(errno.EAGAIN), "clone",
                      pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
        filt.add_rule(kill, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_THREAD, 0))
        filt.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
        allowed += 4
        fd = os.memfd_create("cf-seccomp")

        class _File:
            def fileno(self):
                return fd

        filt.export_bpf(_File())
        size = os.lseek(fd, 0, os.SEEK_END)
        data = os.pread(fd, size, 0)
        os.close(fd)
    except Exception as exc:
        return None, "unavailable: could not build the filter (%s)" % exc
    return data, ("enforced (allowlist of %d system calls, a few only for the job itself; %d kill the job: "
                  "exec, fork, signals to any process, ptrace, other processes' memory, sockets, namespaces...; "
                  "anything else fails with EPERM)" % (allowed, killed + 1))


def load_seccomp(fprog):
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


# --- Landlock (Linux >= 5.13; no privileges needed) -------------------------------------------

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1, 2, 4, 8
LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | (1 << 14) | (1 << 15)
LL_NET_TCP = 3  # BIND_TCP | CONNECT_TCP (ABI >= 4)
LL_SCOPE = 3  # ABSTRACT_UNIX_SOCKET | SIGNAL (ABI >= 6)


class _LandlockAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class JobLandlock:
    """A Landlock domain per job: read and execute beneath the system/Python folders, anything
    beneath the job's own scratch folder, nothing else (not the scratch root, not a sibling's
    folder); no TCP bind/connect (ABI >= 4); signals and abstract sockets scoped to the job
    itself (ABI >= 6), so no sibling and not the server can be signalled.

    The read-only folders are opened once (``O_PATH``) in the server; each child adds them to
    a fresh ruleset and restricts itself: a dozen system calls per job.
    """

    def __init__(self, read_paths):
        self.abi = -1
        self.rules = []
        if platform.machine() not in ("x86_64", "aarch64"):
            self.status = "unavailable: unsupported architecture"
            return
        self.abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
        if self.abi < 1:
            self.status = "unavailable: kernel without Landlock (%s)" % os.strerror(ctypes.get_errno())
            return
        self.fs = LL_FS_BY_ABI.get(self.abi, LL_FS_BY_ABI[5])
        for path, allowed in [(p, LL_EXECUTE | LL_READ_FILE | LL_READ_DIR) for p in read_paths] + \
                [("/dev/null", LL_READ_FILE | LL_WRITE_FILE)]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            allowed = allowed if os.path.isdir(path) else allowed & LL_FILE_RIGHTS
            self.rules.append(_PathBeneath(allowed & self.fs, fd))
        extra = ["TCP bind/connect denied"] if self.abi >= 4 else []
        if self.abi >= 6:
            extra.append("signals and abstract sockets scoped to the job")
        self.status = ("enforced (a domain per job, ABI v%d: reads only the system/Python folders, writes only "
                       "its own scratch%s)" % (self.abi, "".join("; " + e for e in extra)))

    def restrict(self, scratch):
        """Restrict the calling process (a job child); raises OSError if the kernel refuses."""
        attr = _LandlockAttr(self.fs, LL_NET_TCP if self.abi >= 4 else 0, LL_SCOPE if self.abi >= 6 else 0)
        size = 24 if self.abi >= 6 else 16 if self.abi >= 4 else 8
        ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
        if ruleset < 0:
            check(-1, "landlock_create_ruleset")
        scratch_fd = os.open(scratch, os.O_PATH | os.O_CLOEXEC)
        for rule in self.rules + [_PathBeneath(self.fs, scratch_fd)]:
            check(libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0), "landlock_add_rule")
        check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
        os.close(ruleset)
        os.close(scratch_fd)
