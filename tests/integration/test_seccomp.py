"""linux.seccomp: filters seen from inside the container.

The probe makes raw syscalls (`probe syscall NAME ARG...`, `probe syscalls "NAME ARG..."...`)
and reports ret/errno, so each test checks what the workload really gets: the errnoRet
of a rule, the default action, argument conditions, SIGSYS for kill and trap. The
built-in profile comes from `lamina oci spec --seccomp-default` (the lamina binary of
the build, also when the runtime under test is runc: runc gets the same profile).

getpriority(which, who) is the test subject where any syscall will do: nothing in the
runtimes or the probe's start calls it, and which >= 3 makes the kernel say EINVAL,
so a rule's own errno stands out.
"""

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import (BUILD, IS_LAMINA, IS_RUNC, lamina_only, one_line_error, runc_differs,
                      wait_for)

EPERM, ENOSYS, EINVAL, EFAULT = 1, 38, 22, 14
SIGSYS_EXIT = 128 + signal.SIGSYS

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# Docker's allow list (less getpriority/setpriority): enough for the probe and for the
# runtimes' own steps after the filter is in (runc's are many).
ALLOW_LIST = """
accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod chown
clock_getres clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup
dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd
eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fallocate fchdir fchmod
fchmodat fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr
fstat fstatfs fsync ftruncate futex futex_waitv getcpu getcwd getdents getdents64 getegid geteuid
getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getrandom getresgid
getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt gettid gettimeofday
getuid getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch ioctl kill lchown
lgetxattr link linkat listen listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise
membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock mlockall mmap mprotect mremap
msync munlock munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg rename
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_setaffinity sched_yield seccomp select sendfile sendmmsg sendmsg sendto setfsgid setfsuid
setgid setgroups setitimer setpgid setregid setresgid setresuid setreuid setrlimit
set_robust_list setsid setsockopt set_tid_address setuid setxattr shutdown sigaltstack signalfd
signalfd4 socket socketpair splice stat statfs statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill truncate umask uname
unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write writev
clone clone3 unshare setns mount umount2 pivot_root chroot keyctl add_key sethostname
setdomainname
""".split()


NATIVE_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                 "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}.get(os.uname().machine, [])


def deny(names, action=ERRNO, errno=None, args=None):
    rule = {"names": list(names), "action": action}
    if errno is not None:
        rule["errnoRet"] = errno
    if args is not None:
        rule["args"] = args
    return rule


def allow_all(*rules, **extra):
    return {"defaultAction": ALLOW, "syscalls": list(rules), **extra}


def arg(index, op, value, value_two=None):
    a = {"index": index, "value": value, "op": "SCMP_CMP_" + op}
    if value_two is not None:
        a["valueTwo"] = value_two
    return a


def syscalls(ct, *calls, cid=None):
    """Runs `probe syscalls CALL...` in a fresh container; {index: errno}."""
    ct.probe_args("syscalls", *calls)
    res = ct.run(cid=cid) if cid else ct.run()
    assert res.returncode == 0, res
    return [c["errno"] for c in res.json()]


def errno_of(ct, call):
    return syscalls(ct, call)[0]


LAMINA_BIN = BUILD / "lamina" if (BUILD / "lamina").exists() else BUILD / "src" / "lamina"


def default_profile(*cap_add):
    """linux.seccomp of `lamina oci spec --seccomp-default [--cap-add CAP]...`."""
    if not LAMINA_BIN.exists():
        pytest.skip(f"the lamina binary ({LAMINA_BIN}) makes the default profile")
    with tempfile.TemporaryDirectory() as d:
        args = [str(LAMINA_BIN), "oci", "spec", "--bundle", d, "--seccomp-default"]
        for c in cap_add:
            args += ["--cap-add", c]
        subprocess.run(args, check=True, capture_output=True)
        cfg = json.loads((Path(d) / "config.json").read_text())
    return cfg["linux"]["seccomp"], cfg["process"]["capabilities"]["bounding"]


def grant(ct, *caps):
    c = ct.process["capabilities"]
    for s in ("bounding", "effective", "permitted"):
        for cap in caps:
            if cap not in c[s]:
                c[s].append(cap)


# --------------------------------------------------------------------------- actions

def test_errno_default_is_eperm(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"]))
    assert syscalls(ct, "getpriority 0 0", "getpid") == [EPERM, 0]


def test_errno_ret(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority", "setpriority"], errno=77))
    assert syscalls(ct, "getpriority 0 0", "setpriority 0 0 0", "getppid") == [77, 77, 0]


def test_filter_mode_reported(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"]))
    out = ct.probe()
    assert out["seccomp"] == 2
    assert out["no_new_privs"] == 1


def test_default_errno_with_allow_list(ct):
    ct.linux["seccomp"] = {
        "defaultAction": ERRNO, "defaultErrnoRet": 95,
        "architectures": NATIVE_ARCHES,
        "syscalls": [{"names": ALLOW_LIST, "action": ALLOW}],
    }
    assert syscalls(ct, "getpid", "getpriority 0 0", "setpriority 0 0 0") == [0, 95, 95]


def test_syscalls_newer_than_the_profile_are_enosys(ct):
    # as with runc: a syscall above every one the profile names is ENOSYS (libc then
    # falls back to an older one), not the default action
    # (runc 1.1.5 adds its stub only for the listed architectures and without
    # defaultErrnoRet; lamina also for the native one, and with any errno but ENOSYS)
    ct.linux["seccomp"] = {"defaultAction": ERRNO, "architectures": NATIVE_ARCHES,
                           "syscalls": [{"names": ALLOW_LIST, "action": ALLOW}]}
    assert syscalls(ct, "1000", "getpriority 0 0") == [ENOSYS, EPERM]


def test_default_errno_without_errno_ret_is_eperm(ct):
    ct.linux["seccomp"] = {"defaultAction": ERRNO,
                           "syscalls": [{"names": ALLOW_LIST, "action": ALLOW}]}
    assert syscalls(ct, "getpriority 0 0") == [EPERM]


def test_argument_condition_allows_one_value(ct):
    # personality only as a query (0xffffffff): setting a persona is refused
    ct.linux["seccomp"] = {
        "defaultAction": ERRNO, "defaultErrnoRet": 95,
        "syscalls": [{"names": ALLOW_LIST, "action": ALLOW},
                     {"names": ["personality"], "action": ALLOW,
                      "args": [arg(0, "EQ", 0xffffffff)]}],
    }
    assert syscalls(ct, "personality 0xffffffff", "personality 8", "personality 0") == [0, 95, 95]


# which = 3, 4, 5, 7 against 5 (MASKED_EQ: (which & 6) == 4)
OPERATOR_CASES = [
    ("NE", 5, None, [True, True, False, True]),
    ("LT", 5, None, [True, True, False, False]),
    ("LE", 5, None, [True, True, True, False]),
    ("EQ", 5, None, [False, False, True, False]),
    ("GE", 5, None, [False, False, True, True]),
    ("GT", 5, None, [False, False, False, True]),
    ("MASKED_EQ", 6, 4, [False, True, True, False]),
]


@pytest.mark.parametrize("op,value,value_two,hits", OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
def test_operators(ct, op, value, value_two, hits):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77,
                                         args=[arg(0, op, value, value_two)]))
    got = syscalls(ct, *(f"getpriority {w} 0" for w in (3, 4, 5, 7)))
    assert got == [77 if h else EINVAL for h in hits]


def test_conditions_on_two_arguments_are_anded(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77,
                                         args=[arg(0, "EQ", 3), arg(1, "EQ", 9)]))
    assert syscalls(ct, "getpriority 3 9", "getpriority 3 0", "getpriority 4 9") == [77, EINVAL, EINVAL]


def test_kill_process(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], action="SCMP_ACT_KILL_PROCESS"))
    ct.probe_args("syscall", "getpriority", "0", "0")
    res = ct.run()
    assert res.returncode == SIGSYS_EXIT, res
    assert res.stdout == ""


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_kill_thread_and_trap_end_with_sigsys(ct, action):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], action=action))
    ct.probe_args("syscall", "getpriority", "0", "0")
    res = ct.run()
    assert res.returncode == SIGSYS_EXIT, res


def test_log_allows(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], action="SCMP_ACT_LOG"))
    assert syscalls(ct, "getpriority 0 0") == [0]


def test_trace_without_tracer_is_enosys(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], action="SCMP_ACT_TRACE"))
    assert syscalls(ct, "getpriority 0 0") == [ENOSYS]


def test_unknown_syscall_names_are_skipped(ct):
    ct.linux["seccomp"] = allow_all(deny(["no_such_syscall_anywhere", "getpriority"], errno=77))
    assert syscalls(ct, "getpriority 0 0") == [77]


@runc_differs("runc 1.1 refuses every seccomp flag")
def test_flags(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77),
                                    flags=["SECCOMP_FILTER_FLAG_LOG",
                                           "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    assert syscalls(ct, "getpriority 0 0") == [77]


def test_without_no_new_privs(ct):
    # the filter then needs CAP_SYS_ADMIN, which this process does not keep: it goes
    # in before the capabilities are dropped
    ct.process["noNewPrivileges"] = False
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77))
    ct.probe_args("syscalls", "getpriority 0 0")
    out = ct.run().check().json()
    assert [c["errno"] for c in out] == [77]


def test_create_start(ct):
    # the created container waits unfiltered; the workload starts filtered
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77))
    ct.probe_args("syscalls", "getpriority 0 0")
    ct.create().check()
    assert ct.status() == "created"
    ct.start().check()
    wait_for(lambda: ct.status() == "stopped", what="container exit")
    assert [c["errno"] for c in json.loads(ct.output())] == [77]


def test_exec_is_filtered(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77))
    ct.start_sleeper(10)
    res = ct.exec("/probe", "syscalls", "getpriority 0 0", "getpid").check()
    assert [c["errno"] for c in res.json()] == [77, 0]
    res = ct.exec("/probe").check()
    assert res.json()["seccomp"] == 2


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", ERRNO])
def test_profile_denying_execveat(ct, action):
    """lamina's last execve is of its sealed launcher through execveat (test_escapes.py); a
    profile that denies execveat (killing for it, even) still starts its program, at run and
    exec: the launcher is then started through its /proc/self/fd path. The program's own
    execveat is denied as the profile says."""
    ct.linux["seccomp"] = allow_all(deny(["execveat"]) if action == ERRNO else
                                    {"names": ["execveat"], "action": action})
    ct.probe_args("syscalls", "getpid")
    res = ct.run().check()
    assert [c["errno"] for c in res.json()] == [0]
    assert "execveat" not in res.stderr
    ct.start_sleeper(10)
    res = ct.exec("/probe", "syscalls", "getppid").check()
    assert [c["errno"] for c in res.json()] == [0]
    nr = {"x86_64": 322, "aarch64": 281}.get(os.uname().machine)  # execveat
    if action == ERRNO and nr:
        res = ct.exec("/probe", "syscalls", f"{nr} -1 0 0 0 0").check()
        assert [c["errno"] for c in res.json()] == [EPERM]


@lamina_only("the launcher's warning")
def test_profile_denying_execveat_without_proc(ct):
    """Without execveat and without a procfs at /proc the launcher cannot start: the program
    is exec'd directly, and lamina says so."""
    ct.linux["seccomp"] = allow_all(deny(["execveat"]))
    ct.config["mounts"] = [m for m in ct.config["mounts"] if m["destination"] != "/proc"]
    ct.linux["maskedPaths"] = []
    ct.linux["readonlyPaths"] = []
    ct.set_args("/bin/true")
    res = ct.run().check()
    assert "does not allow execveat and no procfs is mounted at /proc" in res.stderr


@lamina_only("lamina's compiled-filter cache")
def test_compiled_filter_is_cached(ct):
    ct.linux["seccomp"] = allow_all(deny(["getpriority"], errno=77))
    assert errno_of(ct, "getpriority 0 0") == 77
    cache = ct.root / ".seccomp-cache"
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".bpf"
    assert files[0].stat().st_mode & 0o777 == 0o600
    first = files[0].stat().st_mtime_ns
    assert errno_of(ct, "getpriority 0 0") == 77
    assert files[0].stat().st_mtime_ns == first  # a hit: not rewritten
    # a damaged file is recompiled, not loaded
    files[0].write_bytes(files[0].read_bytes()[:-8] + b"\0" * 8)
    assert errno_of(ct, "getpriority 0 0") == 77


# --------------------------------------------------------------------------- default profile

# Calls the default profile denies, with arguments that make the kernel fail with
# something other than EPERM when the filter lets them through and the capability is
# there (nothing here changes the host even then).
DENIED_CALLS = {
    "mount": "mount 0 0 0 0 0",
    "keyctl": "keyctl 0 -3 0",
    "bpf": "bpf 999 0 0",
    "kexec_load": "kexec_load 0 0 0 0xdead0000",
    "clock_settime": "clock_settime 0 0",
    "swapon": "swapon 0 0",
    "perf_event_open": "perf_event_open 0 0 -1 -1 0",
    "open_by_handle_at": "open_by_handle_at -1 0 0",
    "init_module": "init_module 0 0 0",
    # last: once in a new user namespace the process has no capability on the host's
    "unshare(CLONE_NEWUSER)": "unshare 0x10000000",
}
ALL_THE_CAPS = ["CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_MODULE",
                "CAP_DAC_READ_SEARCH", "CAP_BPF", "CAP_PERFMON"]


def test_default_profile_denies(ct):
    profile, _ = default_profile()
    # The process gets the capabilities the profile was not made for, so an EPERM can
    # only come from the filter; the same calls without it show the kernel's answer.
    grant(ct, *ALL_THE_CAPS)
    calls = list(DENIED_CALLS.values())
    without = syscalls(ct, *calls)
    ct.linux["seccomp"] = profile
    with_filter = syscalls(ct, *calls)
    for name, w, wo in zip(DENIED_CALLS, with_filter, without):
        assert w == EPERM, f"{name}: errno {w} under the default profile"
        assert wo != EPERM, f"{name}: EPERM even without a filter: the test proves nothing"


def test_default_profile_allows_normal_work(ct):
    profile, _ = default_profile()
    ct.linux["seccomp"] = profile
    out = ct.probe()
    assert out["seccomp"] == 2
    assert out["hostname"] == "lamina-test"
    ct.probe_args("fork-sleep", "3", "0.1")
    ct.run().check()
    # clone without namespace flags (fork) works, clone3 says ENOSYS (glibc falls back)
    assert syscalls(ct, "getpid", "clone3 0 0", "socket 1 1 0") == [0, ENOSYS, 0]
    ct.set_args("/bin/sh", "-c", "echo hi | cat > /tmp/x && cat /tmp/x")
    ct.config["root"]["readonly"] = False
    res = ct.run().check()
    assert res.stdout.strip() == "hi"


def test_default_profile_follows_capabilities(ct):
    # without CAP_SYS_TIME in the profile, clock_settime is the filter's EPERM;
    # made for CAP_SYS_TIME, the filter lets it through to the kernel (EFAULT: NULL time)
    grant(ct, "CAP_SYS_TIME")
    ct.linux["seccomp"], _ = default_profile()
    assert errno_of(ct, "clock_settime 0 0") == EPERM
    profile, bounding = default_profile("CAP_SYS_TIME")
    assert "CAP_SYS_TIME" in bounding
    ct.linux["seccomp"] = profile
    assert errno_of(ct, "clock_settime 0 0") == EFAULT


def test_default_profile_with_sys_admin_allows_namespaces(ct):
    grant(ct, "CAP_SYS_ADMIN")
    ct.linux["seccomp"], _ = default_profile("CAP_SYS_ADMIN")
    # unshare of a uts namespace now reaches the kernel, and succeeds
    assert syscalls(ct, "unshare 0x04000000", "mount 0 0 0 0 0") == [0, EFAULT]


# --------------------------------------------------------------------------- bad input

# Sections runc 1.1 lets through (it ignores the rule without names, and the errnoRet
# of an action that has none, which the OCI spec says a runtime MUST refuse).
RUNC_ACCEPTS = {"no-names", "errno-on-allow"}

BAD_SECTIONS = [
    ("unknown-action", {"defaultAction": "SCMP_ACT_NOPE"}, "linux.seccomp.defaultAction"),
    ("bad-operator", allow_all(deny(["getpid"], args=[arg(0, "SOMETIMES", 1)])),
     "linux.seccomp.syscalls[0].args[0].op"),
    ("bad-arch", allow_all(architectures=["SCMP_ARCH_Z80"]), "linux.seccomp.architectures[0]"),
    ("errno-out-of-range", allow_all(deny(["getpid"], errno=5000)), "linux.seccomp.syscalls[0].errnoRet"),
    ("unknown-flag", allow_all(flags=["SECCOMP_FILTER_FLAG_NOPE"]), "linux.seccomp.flags[0]"),
    ("arg-index", allow_all(deny(["getpid"], args=[arg(6, "EQ", 1)])),
     "linux.seccomp.syscalls[0].args[0].index"),
    ("no-names", allow_all({"action": ERRNO}), "linux.seccomp.syscalls[0].names"),
    ("errno-on-allow", allow_all(deny(["getpid"], action="SCMP_ACT_KILL", errno=1)),
     "linux.seccomp.syscalls[0].errnoRet"),
]


@pytest.mark.parametrize("section,field", [
    pytest.param(*c[1:], id=c[0], marks=[pytest.mark.skipif(IS_RUNC and c[0] in RUNC_ACCEPTS,
                                                           reason="runc accepts it")])
    for c in BAD_SECTIONS])
def test_bad_section_fails_create(ct, section, field):
    ct.linux["seccomp"] = section
    res = ct.create()
    err = one_line_error(res)
    if IS_LAMINA:
        assert field in err, err
    assert not ct.has_state()
