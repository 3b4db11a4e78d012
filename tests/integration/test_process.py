"""process.*: args, env, cwd, user, umask, capabilities, no_new_privs, rlimits,
oomScoreAdj, and hostname / domainname / sysctl."""

import json
import os
import resource

import pytest

from conftest import IS_LAMINA, assert_rlimit, one_line_error, runc_differs

CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
}


def capmask(names):
    m = 0
    for n in names:
        m |= 1 << CAP_NUMBERS[n]
    return m


def caps(out):
    return {k: int(v, 16) for k, v in out["caps"].items()}


RLIM_INF_JSON = 2 ** 64 - 1  # how OCI configs spell "unlimited"


def rlim_json(v):
    return RLIM_INF_JSON if v == resource.RLIM_INFINITY else v


def rlim_probe(v):
    return -1 if v == resource.RLIM_INFINITY else v


# ---------------------------------------------------------------------------
# args, env, cwd

def test_args_passed_verbatim(ct):
    args = ["report", "two words", "", "quote\"back\\slash", "ünïcødé", "-x", "--", "$HOME"]
    out = ct.probe(*args)
    assert out["argv"] == ["/probe"] + args


def test_args_path_lookup(ct):
    # args[0] without a slash is looked up in the container's PATH.
    ct.set_args("sh", "-c", "exit 7")
    assert ct.run().returncode == 7


def test_env(ct):
    ct.process["env"] = ["PATH=/bin", "FOO=bar", "EMPTY=", "WITH_EQ=a=b", "HOME=/home/x"]
    out = ct.probe()
    for e in ct.process["env"]:
        assert e in out["env"]
    assert len([e for e in out["env"] if e.startswith("HOME=")]) == 1


def test_env_home_defaulted(ct):
    # runc adds HOME from the user's passwd entry when the config has none.
    ct.process["env"] = ["PATH=/bin"]
    out = ct.probe()
    assert "HOME=/root" in out["env"]


def test_cwd(ct):
    ct.process["cwd"] = "/tmp"
    out = ct.probe()
    assert out["cwd"] == "/tmp"


def test_cwd_created_if_missing(ct):
    ct.config["root"]["readonly"] = False
    ct.process["cwd"] = "/work/dir"
    out = ct.probe()
    assert out["cwd"] == "/work/dir"
    assert (ct.rootfs / "work" / "dir").is_dir()


def test_only_stdio_fds(ct):
    # An fd the runtime inherited (not asked for with --preserve-fds) must not reach
    # the workload; neither may any fd of the runtime's own.
    with open(ct.tmp / "leak", "w") as f:
        ct.probe_args()
        res = ct.run(pass_fds=(f.fileno(),))
    fds = res.check().json()["fds"]
    assert sorted(f["fd"] for f in fds) == [0, 1, 2], fds


def test_only_stdio_fds_exec(ct):
    ct.start_sleeper(10)
    with open(ct.tmp / "leak", "w") as f:
        res = ct.exec("/probe", pass_fds=(f.fileno(),))
    fds = res.check().json()["fds"]
    assert sorted(f["fd"] for f in fds) == [0, 1, 2], fds


# ---------------------------------------------------------------------------
# user

def test_default_user_is_root(ct):
    out = ct.probe()
    assert (out["uid"], out["gid"], out["euid"], out["egid"]) == (0, 0, 0, 0)
    assert out["groups"] == []


def test_user_uid_gid_additional_gids(ct):
    ct.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [29, 5, 4242]}
    out = ct.probe()
    assert (out["uid"], out["euid"]) == (1000, 1000)
    assert (out["gid"], out["egid"]) == (1000, 1000)
    assert sorted(out["groups"]) == [5, 29, 4242]


def test_user_uid_only(ct):
    ct.process["user"] = {"uid": 1000, "gid": 0}
    out = ct.probe()
    assert out["uid"] == 1000 and out["gid"] == 0


@pytest.mark.parametrize("umask,expected", [(0o077, "0077"), (0o002, "0002"), (0, "0000")])
def test_umask(ct, umask, expected):
    ct.process["user"]["umask"] = umask
    out = ct.probe()
    assert out["umask"] == expected


def test_umask_default(ct):
    out = ct.probe()
    assert out["umask"] == "0022"


# ---------------------------------------------------------------------------
# capabilities

def test_default_capabilities(ct):
    out = ct.probe()
    want = capmask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    c = caps(out)
    assert c["CapBnd"] == want
    assert c["CapPrm"] == want
    assert c["CapEff"] == want
    assert c["CapInh"] == 0
    assert c["CapAmb"] == 0


def test_bounding_set_exact(ct):
    bnd = ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_KILL"]
    ct.process["capabilities"] = {"bounding": bnd, "permitted": bnd, "effective": bnd}
    c = caps(ct.probe())
    assert c["CapBnd"] == capmask(bnd)
    assert c["CapEff"] == capmask(bnd)
    assert c["CapPrm"] == capmask(bnd)


def test_root_effective_subset(ct):
    # uid 0 regains its bounding set on execve; a non-root user keeps only ambient.
    # Root with an effective set smaller than permitted: the kernel recomputes at exec,
    # so only the bounding set is authoritative for root.
    bnd = ["CAP_CHOWN", "CAP_KILL"]
    ct.process["capabilities"] = {"bounding": bnd, "permitted": bnd,
                                  "effective": ["CAP_KILL"]}
    c = caps(ct.probe())
    assert c["CapBnd"] == capmask(bnd)
    assert c["CapPrm"] & ~capmask(bnd) == 0


def test_no_capabilities(ct):
    ct.process["capabilities"] = {"bounding": [], "permitted": [], "effective": [],
                                  "inheritable": [], "ambient": []}
    c = caps(ct.probe())
    assert c == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}


def test_non_root_loses_caps_without_ambient(ct):
    bnd = ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"]
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    ct.process["capabilities"] = {"bounding": bnd, "permitted": bnd, "effective": bnd}
    c = caps(ct.probe())
    assert c["CapBnd"] == capmask(bnd)
    assert c["CapPrm"] == 0 and c["CapEff"] == 0 and c["CapAmb"] == 0


def test_inheritable_and_ambient(ct):
    bnd = ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_CHOWN"]
    inh = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    amb = ["CAP_NET_BIND_SERVICE"]
    ct.process["user"] = {"uid": 1000, "gid": 1000}
    ct.process["capabilities"] = {"bounding": bnd, "permitted": bnd, "effective": bnd,
                                  "inheritable": inh, "ambient": amb}
    c = caps(ct.probe())
    assert c["CapBnd"] == capmask(bnd)
    assert c["CapInh"] == capmask(inh)
    assert c["CapAmb"] == capmask(amb)
    assert c["CapPrm"] == capmask(amb)
    assert c["CapEff"] == capmask(amb)


# ---------------------------------------------------------------------------
# no_new_privs

@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(ct, nnp):
    ct.process["noNewPrivileges"] = nnp
    assert ct.probe()["no_new_privs"] == (1 if nnp else 0)


def test_no_new_privileges_absent_means_off(ct):
    del ct.process["noNewPrivileges"]
    assert ct.probe()["no_new_privs"] == 0


def test_no_seccomp_without_config(ct):
    assert ct.probe()["seccomp"] == 0


# ---------------------------------------------------------------------------
# rlimits

def test_rlimit_nofile_default(ct):
    out = ct.probe()
    assert out["rlimits"]["RLIMIT_NOFILE"] == {"soft": 1024, "hard": 1024}


def test_rlimits_lowered(ct):
    ct.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
        {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_CPU", "soft": 100, "hard": 200},
    ]
    r = ct.probe()["rlimits"]
    assert_rlimit(r, "RLIMIT_NOFILE", 256, 512)
    assert r["RLIMIT_CORE"] == {"soft": 0, "hard": 0}
    assert r["RLIMIT_NPROC"] == {"soft": 500, "hard": 600}
    assert r["RLIMIT_MSGQUEUE"] == {"soft": 4096, "hard": 8192}
    assert r["RLIMIT_CPU"] == {"soft": 100, "hard": 200}


def test_rlimit_same_value_is_noop(ct):
    # Setting a limit to its current value must not fail (raising is EPERM here).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ssoft, shard = resource.getrlimit(resource.RLIMIT_STACK)
    ct.process["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": rlim_json(soft), "hard": rlim_json(hard)},
        {"type": "RLIMIT_STACK", "soft": rlim_json(ssoft), "hard": rlim_json(shard)},
    ]
    r = ct.probe()["rlimits"]
    assert r["RLIMIT_NOFILE"] == {"soft": rlim_probe(soft), "hard": rlim_probe(hard)}
    assert r["RLIMIT_STACK"] == {"soft": rlim_probe(ssoft), "hard": rlim_probe(shard)}


def test_rlimit_soft_raised_up_to_hard(ct):
    # Raising the soft limit up to the existing hard limit is always allowed.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ct.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": rlim_json(hard),
                              "hard": rlim_json(hard)}]
    r = ct.probe()["rlimits"]
    assert r["RLIMIT_NOFILE"]["soft"] == rlim_probe(hard)


def test_rlimit_above_hard_limit_is_clear_error(ct):
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("NOFILE hard limit is unlimited here")
    ct.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1000,
                              "hard": hard + 1000}]
    res = ct.run()
    err = one_line_error(res)
    assert "rlimit" in err.lower()
    if IS_LAMINA:
        assert "nofile" in err.lower(), err
    assert not ct.has_state()


def test_rlimit_exec_inherits(ct):
    ct.process["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 400}]
    ct.start_sleeper(10)
    out = ct.exec("/probe").check().json()
    assert_rlimit(out["rlimits"], "RLIMIT_NOFILE", 300, 400)


# ---------------------------------------------------------------------------
# oomScoreAdj

def host_has_cap(name):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << CAP_NUMBERS[name]))
    return False


@pytest.mark.parametrize("adj", [500, 1000, 0])
def test_oom_score_adj(ct, adj):
    ct.process["oomScoreAdj"] = adj
    assert ct.probe()["oom_score_adj"] == adj


def test_oom_score_adj_lowered(ct):
    # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host's root lacks
    # (the same reason raising an rlimit fails): then it must be a clear error.
    ct.process["oomScoreAdj"] = -200
    if host_has_cap("CAP_SYS_RESOURCE"):
        assert ct.probe()["oom_score_adj"] == -200
    else:
        err = one_line_error(ct.run())
        assert "oom_score_adj" in err.lower() or "oomscoreadj" in err.lower()
        assert not ct.has_state()


# ---------------------------------------------------------------------------
# hostname, domainname, sysctl

def test_hostname(ct):
    ct.config["hostname"] = "box-1.example"
    out = ct.probe()
    assert out["hostname"] == "box-1.example"
    assert os.uname().nodename != "box-1.example"


@runc_differs("runc 1.1 ignores domainname (added in runc 1.2)")
def test_domainname(ct):
    ct.config["domainname"] = "test.domain"
    out = ct.probe()
    assert out["domainname"] == "test.domain"


def read_host_sysctl(name):
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


@pytest.mark.parametrize("name,value", [
    ("net.ipv4.ip_forward", "1"),
    ("kernel.shmmax", "123456789"),
    ("kernel.msgmax", "4096"),
    ("net.core.somaxconn", "777"),
])
def test_sysctl(ct, name, value):
    host_before = read_host_sysctl(name)
    if host_before == value and value in ("0", "1"):
        value = "0" if value == "1" else "1"  # the host has it already (e.g. a podman set ip_forward)
    assert host_before != value
    ct.linux["sysctl"] = {name: value}
    ct.probe_args("sysctl", name)
    res = ct.run().check()
    assert res.stdout.strip() == value
    assert read_host_sysctl(name) == host_before


def test_sysctl_several(ct):
    ct.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000"}
    ct.set_args("/bin/sh", "-c",
                "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni")
    res = ct.run().check()
    assert res.stdout.split() == ["1", "1000"]


def test_sysctl_not_namespaced_refused(ct):
    # vm.* is global: writing it from a container config would change the host.
    name = "vm.swappiness"
    before = read_host_sysctl(name)
    new = str((int(before) + 7) % 100)
    ct.linux["sysctl"] = {name: new}
    try:
        res = ct.run()
        after = read_host_sysctl(name)
    finally:
        if read_host_sysctl(name) != before:
            with open("/proc/sys/vm/swappiness", "w") as f:
                f.write(before)
    assert after == before, "a container changed a host-wide sysctl"
    one_line_error(res)


# ---------------------------------------------------------------------------
# LSM fields: lamina applies neither; it never pretends to

def lsm_enabled(name, sign):
    try:
        return name in open("/sys/kernel/security/lsm").read().strip().split(",")
    except OSError:
        return os.path.exists(sign)


LSM_FIELDS = [("apparmorProfile", "lamina-test-profile", "apparmor", "/sys/module/apparmor/parameters/enabled"),
              ("selinuxLabel", "system_u:system_r:container_t:s0", "selinux", "/sys/fs/selinux/enforce")]


@pytest.mark.parametrize("field,value,lsm,sign", LSM_FIELDS)
@pytest.mark.parametrize("where", ["create", "exec"])
def test_lsm_field_refused_or_warned(ct, field, value, lsm, sign, where):
    """process.apparmorProfile / selinuxLabel: lamina applies neither, so where the host
    enforces that LSM the container (or exec'd process) is refused rather than run less
    confined than asked, and where it does not, it runs with a warning naming the field."""
    enabled = lsm_enabled(lsm, sign)
    if where == "create":
        ct.process[field] = value
        ct.set_args("/bin/true")
        res = ct.run()
    else:
        ct.start_sleeper(10)
        proc = dict(ct.process, args=["/bin/true"], **{field: value})
        path = ct.tmp / "process.json"
        path.write_text(json.dumps(proc))
        res = ct.oci("exec", "--process", str(path), ct.id)
    if IS_LAMINA and enabled:
        assert res.returncode != 0
        assert field in one_line_error(res) and "does not apply" in res.stderr
    elif IS_LAMINA:
        assert res.returncode == 0, res
        assert f"{field} \"{value}\" ignored" in res.stderr


def test_apparmor_unconfined_is_no_warning(ct):
    ct.process["apparmorProfile"] = "unconfined"
    ct.set_args("/bin/true")
    res = ct.run().check()
    assert "apparmorProfile" not in res.stderr
