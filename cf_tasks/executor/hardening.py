"""One-time OS hardening of the sandbox zygote (standard library + ctypes only).

Loaded by ``zygote.py`` from its own folder (the zygote runs with ``-I -S`` and must not
import ``cf_tasks``). Every layer is best effort; :func:`harden` returns a report line per
layer, starting with ``enforced`` or ``unavailable: <why>``, which the parent turns into
``Executor.isolation_report()`` and a warning when something is missing.

Layers: user/network/mount/PID namespaces, a private read-only root (pivot_root), dropping
root to ``nobody``, dropping all capabilities, ``PR_SET_NO_NEW_PRIVS``, Landlock, and a
seccomp deny-list compiled once with ``pyseccomp`` (exported as raw BPF for the children).
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
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 4, 24, 38, 47
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
NOBODY = 65534
libc = ctypes.CDLL(None, use_errno=True)


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
        check(libc.syscall(SYS_PIVOT_ROOT, new.encode(), (new + "/.old").encode()), "pivot_root")
        os.chdir("/")
        check(libc.umount2(b"/.old", MNT_DETACH), "umount old root")
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
    check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def _effective_capabilities():
    data = (_CapData * 2)()
    check(libc.capget(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capget")
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
            mapped = True
            if was_root:
                report["user_namespace"] = "not needed (root: set-up as root, then dropped to nobody)"
            else:
                try:  # can fail where a security module restricts unprivileged namespaces
                    _write_file("/proc/self/setgroups", "deny")
                    _write_file("/proc/self/uid_map", "0 %d 1" % uid)
                    _write_file("/proc/self/gid_map", "0 %d 1" % gid)
                    report["user_namespace"] = "enforced (uid %d outside)" % uid
                except OSError as exc:
                    mapped = False
                    report["user_namespace"] = "unavailable: could not map ids (%s)" % exc
            report["network_namespace"] = "enforced (no interfaces, no loopback)"
            report["pid_namespace"] = "enforced (server is PID 1; its death kills every job process)"
            try:
                if not mapped:
                    raise OSError("no usable user namespace")
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
        os.makedirs(scratch_root, exist_ok=True)
        report["landlock"] = landlock([p for p in config["binds"] if not p.startswith("/dev/")], scratch_root)
    else:
        report["no_new_privs"] = "unavailable: %s" % os.strerror(ctypes.get_errno())
        report["landlock"] = "unavailable: needs no_new_privs"
    # Inside our user namespace geteuid() is 0 but the kernel counts (and limits) the real
    # user; only real root, which failed to drop, bypasses RLIMIT_NPROC.
    real_root = was_root and not report["uid"].startswith("enforced")
    report["nproc"] = ("unavailable: running as root" if real_root
                       else "enforced (RLIMIT_NPROC=0: no fork, spawn or thread)")
    return report, scratch_root


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


class SockFprog(ctypes.Structure):
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


# Landlock (Linux >= 5.13; no root needed): per-ABI access rights, see linux/landlock.h.
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


def landlock(read_paths, write_path):
    """Restrict this process and its future children: read/execute only beneath
    ``read_paths``, anything beneath ``write_path``; no TCP bind/connect and no signals or
    abstract sockets outside the sandbox where the kernel's Landlock ABI allows."""
    if platform.machine() not in ("x86_64", "aarch64"):
        return "unavailable: unsupported architecture"
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return "unavailable: kernel without Landlock (%s)" % os.strerror(ctypes.get_errno())
    fs = LL_FS_BY_ABI.get(abi, LL_FS_BY_ABI[5])
    attr = _LandlockAttr(fs, LL_NET_TCP if abi >= 4 else 0, LL_SCOPE if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return "unavailable: create_ruleset failed (%s)" % os.strerror(ctypes.get_errno())
    try:
        rules = [(p, LL_EXECUTE | LL_READ_FILE | LL_READ_DIR) for p in read_paths]
        rules += [("/dev/null", LL_READ_FILE | LL_WRITE_FILE), (write_path, fs)]
        for path, allowed in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    allowed &= LL_FILE_RIGHTS
                rule = _PathBeneath(allowed & fs, fd)
                check(libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0), "landlock rule " + path)
            finally:
                os.close(fd)
        check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    except OSError as exc:
        return "unavailable: %s" % exc
    finally:
        os.close(ruleset)
    extra = []
    if abi >= 4:
        extra.append("TCP bind/connect denied")
    if abi >= 6:
        extra.append("signals and abstract sockets scoped to the sandbox")
    return "enforced (ABI v%d: read-only system/Python dirs, writes only in scratch%s)" % (
        abi, "; " + "; ".join(extra) if extra else "")
