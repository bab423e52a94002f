"""The SSH connector against a real OpenSSH server (Debian's ``openssh-server``).

Each module run starts its own ``sshd`` on a free loopback port, as the current user, with a
host key, an ``authorized_keys`` and a configuration made in a temporary folder; the machine's
own sshd (if any) is not involved. Without sshd the tests skip, except on CI, where they fail.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsloom import App
from opsloom.connectors.builtin import ssh
from opsloom.errors import ConnectorPermanentError, ConnectorRetryableError, InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from peers import free_port


@dataclass
class Sshd:
    port: int
    user: str
    host_key: str
    client_key: str
    other_client_key: str
    other_host_key: str
    log: Path


def _keygen(path: Path) -> tuple[str, str]:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "opsloom-test", "-f", str(path)],
        check=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


def _sshd_binary() -> str:
    found = shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None
    )
    if found is None:
        reason = "OpenSSH's sshd is not installed (apt-get install openssh-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + "; .ci/run installs it")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    binary = _sshd_binary()
    folder = tmp_path_factory.mktemp("sshd")
    _, host_pub = _keygen(folder / "host_key")
    _, other_host_pub = _keygen(folder / "other_host_key")
    client, client_pub = _keygen(folder / "client_key")
    other_client, _ = _keygen(folder / "other_client_key")
    (folder / "authorized_keys").write_text(client_pub + "\n")
    user = getpass.getuser()
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\n"
        f"AllowUsers {user}\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        # The temporary folder's owner and modes are not those of a home directory.
        "StrictModes no\n"
        "LogLevel VERBOSE\n"
    )
    if os.geteuid() == 0:
        # sshd started by root separates privileges into this (empty) folder.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    check = subprocess.run([binary, "-t", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = folder / "sshd.log"
    process = subprocess.Popen(
        [binary, "-D", "-e", "-f", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert process.stderr is not None
    seen: list[str] = []
    with log.open("w") as out:
        for line in process.stderr:  # the event that says it is ready, not a sleep
            seen.append(line)
            out.write(line)
            out.flush()
            if "Server listening on" in line:
                break
        else:
            pytest.fail(f"sshd did not start: {''.join(seen)}")
    # Keep draining its log so it never blocks on a full pipe.
    drain = subprocess.Popen(
        ["tee", "-a", str(log)], stdin=process.stderr, stdout=subprocess.DEVNULL
    )
    try:
        yield Sshd(port, user, host_pub, client, other_client, other_host_pub, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        drain.wait(timeout=10)


def _settings(sshd: Sshd, **changes: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": sshd.port,
        "username": sshd.user,
        "host_keys": [sshd.host_key],
        "private_key": sshd.client_key,
        **changes,
    }


async def test_ssh__runs_a_command_and_returns_its_output(ops: App, sshd: Sshd) -> None:
    await ops.connections.add_connection("box", "ssh", _settings(sshd))
    assert "logged in, host key pinned" in await ops.connections.test_connection("box")
    out = await ops.connections.call(
        ssh.run, "box", {"command": 'echo hello; echo warn >&2; printf %s "$USER"'}
    )
    assert out["exit_status"] == 0
    assert out["stdout"] == f"hello\n{sshd.user}" and out["stderr"] == "warn\n"
    fed = await ops.connections.call(ssh.run, "box", {"command": "tr a-z A-Z", "stdin": "abc"})
    assert fed["stdout"] == "ABC"
    cut = await ops.connections.call(ssh.run, "box", {"command": "seq 1000", "max_output": 9})
    assert cut["truncated"] is True and cut["stdout"] == "999\n1000\n"


async def test_ssh__a_failing_command_fails_the_step_unless_unchecked(ops: App, sshd: Sshd) -> None:
    await ops.connections.add_connection("box", "ssh", _settings(sshd))
    with pytest.raises(ConnectorPermanentError, match="exit status 3: no disk"):
        await ops.connections.call(ssh.run, "box", {"command": "echo no disk >&2; exit 3"})
    out = await ops.connections.call(ssh.run, "box", {"command": "exit 3", "check": False})
    assert out["exit_status"] == 3
    with pytest.raises(ConnectorRetryableError, match="ran over"):
        await ops.connections.call(ssh.run, "box", {"command": "sleep 5", "timeout": 0.3})


async def test_ssh__a_wrong_pinned_host_key_is_refused_before_logging_in(
    ops: App, sshd: Sshd
) -> None:
    await ops.connections.add_connection(
        "spoofed", "ssh", _settings(sshd, host_keys=[sshd.other_host_key])
    )
    import asyncssh

    presented = asyncssh.import_public_key(sshd.host_key).get_fingerprint()
    pinned = asyncssh.import_public_key(sshd.other_host_key).get_fingerprint()
    before = len(sshd.log.read_text())
    with pytest.raises(ConnectorPermanentError) as caught:
        await ops.connections.call(ssh.run, "spoofed", {"command": "touch /tmp/never"})
    message = str(caught.value)
    assert "host key does not match the pinned key" in message
    assert presented in message and pinned in message
    assert "Accepted publickey" not in sshd.log.read_text()[before:]


async def test_ssh__refused_credentials_and_a_dead_port(ops: App, sshd: Sshd) -> None:
    await ops.connections.add_connection(
        "stranger", "ssh", _settings(sshd, private_key=sshd.other_client_key)
    )
    with pytest.raises(ConnectorPermanentError, match="was refused"):
        await ops.connections.call(ssh.run, "stranger", {"command": "true"})
    await ops.connections.add_connection("gone", "ssh", _settings(sshd, port=free_port()))
    with pytest.raises(ConnectorRetryableError, match=r"ssh .*@127\.0\.0\.1"):
        await ops.connections.call(ssh.run, "gone", {"command": "true"})


async def test_ssh__settings_need_a_pinned_key_and_a_credential(ops: App, sshd: Sshd) -> None:
    with pytest.raises(InputError, match="host_keys"):
        await ops.connections.add_connection("bad", "ssh", _settings(sshd, host_keys=[]))
    with pytest.raises(InputError, match="private_key or password"):
        await ops.connections.add_connection("bad", "ssh", _settings(sshd, private_key=None))
    # A known_hosts line is accepted as it is, host pattern and all.
    line = f"[127.0.0.1]:{sshd.port} {sshd.host_key}"
    await ops.connections.add_connection("kh", "ssh", _settings(sshd, host_keys=line))
    shown = await ops.connections.connection("kh")
    assert shown["secrets"] == ["private_key"] and "BEGIN" not in str(shown)
    out = await ops.connections.call(ssh.run, "kh", {"command": "echo ok"})
    assert out["stdout"] == "ok\n"
    # So is a fingerprint, as ssh-keygen -lf prints it.
    import asyncssh

    fingerprint = asyncssh.import_public_key(sshd.host_key).get_fingerprint()
    await ops.connections.add_connection("fp", "ssh", _settings(sshd, host_keys=[fingerprint]))
    out = await ops.connections.call(ssh.run, "fp", {"command": "echo fp"})
    assert out["stdout"] == "fp\n"
