"""The README's first command stays true: examples/run builds lamina and runs
its examples (an OCI bundle, an image pulled from a loopback registry, and a
detached container of the agent that survives the agent's kill -9) to the end."""

import subprocess

from conftest import IS_RUNC, REPO

import pytest


@pytest.mark.skipif(IS_RUNC, reason="the example runs lamina itself")
def test_examples_run():
    p = subprocess.run([str(REPO / "examples" / "run")], capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "hello from lamina, pid 1 in its own namespaces, as 0:0" in p.stdout
    assert "hello from an image: busybox, user root" in p.stdout
    assert "exec in " in p.stdout and "still running: web" in p.stdout
    assert "containers left: 0" in p.stdout
