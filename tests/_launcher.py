"""A real SSH-reachable "machine" on loopback for the Ray cluster-launcher tests.

The launcher (`ray up`, `ray submit`, `ray exec`, `ray down`) reaches its nodes only over SSH. Here
the head is this machine itself, behind a private sshd bound to 127.0.0.1 on a free port, with a
fresh key pair, and with a home directory of its own (sshd's `SetEnv HOME=`) so that whatever the
cluster's setup commands write into `~` (the venv, `~/.bashrc`, `~/.ray/auth_token`, the MLflow
store) stays inside the test's directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from tests._helpers import free_port

REPO = Path(__file__).resolve().parents[1]
SSHD = Path("/usr/sbin/sshd")
#: Programs the launcher needs on this machine (Debian: openssh-server, openssh-client, rsync,
#: netcat-openbsd; .ci/run installs them).
NEEDED = {
    "sshd": SSHD,
    "ssh": "ssh",
    "ssh-keygen": "ssh-keygen",
    "rsync": "rsync",
    "nc": "nc",
    "curl": "curl",
}


def missing_programs() -> list[str]:
    return [name for name, prog in NEEDED.items() if shutil.which(str(prog)) is None]


class SSHNode(NamedTuple):
    """A running private sshd and what a cluster config needs to log in to it."""

    port: int
    user: str
    key: Path  # private key accepted by the sshd
    home: Path  # $HOME of every SSH session
    process: subprocess.Popen
    log: Path


def _login_env() -> str:
    """~/.bashrc of the SSH side: what a freshly provisioned machine has before `ray up`.

    A login shell resets PATH, so put the Python this test runs on (>= 3.10 with venv, as the
    cluster docs require) first, and keep this machine's pip settings (where its wheels lie).
    PIP_RETRIES=0: the head's setup names PyTorch's CPU index, which this network cannot resolve;
    pip then takes the same wheel from the local wheel directory, without retrying the dead host
    for a minute first.
    """
    python_bin = Path(getattr(sys, "_base_executable", sys.executable)).resolve().parent
    lines = [f'export PATH="{python_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"']
    for name, value in sorted(os.environ.items()):
        if name.startswith("PIP_") and name != "PIP_RETRIES":
            lines.append(f"export {name}={value!r}")
    lines.append("export PIP_RETRIES=0")
    # Share this user's download cache: the node installs the same wheels the test environment has.
    lines.append(f"export PIP_CACHE_DIR={_pip_cache_dir()!r}")
    return "\n".join(lines) + "\n"


def _pip_cache_dir() -> str:
    out = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else str(Path.home() / ".cache" / "pip")


def start_sshd(root: Path, *, timeout: float = 30) -> SSHNode:
    """Start sshd on 127.0.0.1:<free port> that admits only a fresh key, for the current user."""
    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    home.mkdir()
    # Ubuntu's ~/.profile: a login shell (Ray runs every command in one) reads ~/.bashrc.
    (home / ".profile").write_text('[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n')
    (home / ".bashrc").write_text(_login_env())
    # This user's pip configuration (where this machine keeps its wheels and package mirrors).
    for rel in (".config/pip/pip.conf", ".pip/pip.conf"):
        if (Path.home() / rel).is_file():
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path.home() / rel, home / rel)
    for name in ("host_ed25519", "client_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_ed25519'}\n"
        f"PidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        # The keys live under a world-traversable temporary directory.
        "StrictModes no\n"
        f"AllowUsers {_user()}\n"
        f"SetEnv HOME={home}\n"
    )
    log = root / "sshd.log"
    proc = subprocess.Popen([str(SSHD), "-D", "-f", str(config), "-E", str(log)], start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"sshd exited with {proc.returncode}: {log.read_text() if log.exists() else ''}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout} s") from None
            time.sleep(0.2)
    return SSHNode(port=port, user=_user(), key=root / "client_ed25519", home=home, process=proc, log=log)


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def loopback_config(template: Path, node: SSHNode, shared: Path, out: Path) -> Path:
    """`template` (a cluster config of the project) pointed at `node`; written to `out`.

    Only what names machines, users and storage changes: the provider (this machine as the head,
    no workers), the SSH login, and the shared storage (a directory here instead of the NFS
    share or the S3 bucket placeholder). Files, setup and start commands stay as written.
    """
    cfg = yaml.safe_load(template.read_text())
    cfg["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    # Ray's auth schema has no port: reach the node's sshd through a proxy command (rsync too).
    cfg["auth"] = {
        "ssh_user": node.user,
        "ssh_private_key": str(node.key),
        "ssh_proxy_command": f"nc %h {node.port}",
    }
    # A cloud provider's node types and worker limits mean nothing to the local provider.
    for key in ("available_node_types", "head_node_type", "max_workers", "idle_timeout_minutes"):
        cfg.pop(key, None)
    text = yaml.safe_dump(cfg, sort_keys=False, width=1000)
    text = text.replace("s3://YOUR-BUCKET/mlflow-artifacts", str(shared / "mlflow-artifacts"))
    text = text.replace("/mnt/nfs/nsr-tune", str(shared))
    out.write_text(text)
    return out


def ray_cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    """The `ray` command of this environment, from the repo root (file_mounts' "." is the project)."""
    ray = Path(sys.executable).parent / "ray"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return subprocess.run(
        [str(ray), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
