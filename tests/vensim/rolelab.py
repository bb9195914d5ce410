"""Test hosts + a lab PCE with the VEN stand-in, and ansible-playbook runs of the collection against them.

Used by tests/vensim/test_ven_role.py, tests/bench/bench_ven_pairing.py and `make demo`:

    with RoleLab("demo", hosts=("dv1", "dv2"), subnet="10.213.244.0/24", bridge="hldemo0") as lab:
        run = lab.playbook("playbooks/pair.yml", "-e", "pair_hosts=all", *lab.pairing_vars("demo-linux"))

The PCE connection reaches ansible-playbook as ILLUMIO_* environment variables (what an AWX credential does),
never on its command line. Needs root (network namespaces, sshd).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOSTLAB = REPO / "tests" / "hostlab" / "hostlab.py"
sys.path.insert(0, str(HERE))

import vensimlab  # noqa: E402


class RoleLab:
    """A hostlab of its own (state dir, bridge, subnet) and a lab PCE on its bridge; removed on exit."""

    def __init__(self, name: str, hosts: tuple[str, ...], subnet: str, bridge: str, keep: bool = False):
        self.name = name
        self.hosts = hosts
        self.subnet = subnet
        self.bridge = bridge
        self.keep = keep
        self.state_dir = Path(f"/var/tmp/hostlab-{name}")
        self.pce_dir = Path(f"/var/tmp/{name}-pce")
        self.collections = Path(f"/var/tmp/{name}-collections")
        self.pce: vensimlab.LabPce | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> RoleLab:
        self.down()
        self.hostlab("up", *self.hosts)
        bridge_ip = self.subnet.rsplit(".", 1)[0] + ".1"
        self.pce = vensimlab.start(self.pce_dir, f"{bridge_ip}:0")
        link = self.collections / "ansible_collections" / "microseg" / "illumio"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(REPO)
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.keep:
            self.down()

    def down(self) -> None:
        vensimlab.stop(self.pce_dir, remove=True)
        if self.state_dir.exists():
            self.hostlab("down", "--all", *self.hosts)
        link = self.collections / "ansible_collections" / "microseg" / "illumio"
        if link.is_symlink():
            link.unlink()
        for folder in (link.parent, link.parent.parent, self.collections):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def hostlab(self, *args: str) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "HOSTLAB_STATE_DIR": str(self.state_dir),
            "HOSTLAB_BRIDGE": self.bridge,
            "HOSTLAB_SUBNET": self.subnet,
        }
        done = subprocess.run(
            [sys.executable, str(HOSTLAB), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"hostlab {' '.join(args)}: {done.stderr}")
        return done

    # --- ansible -------------------------------------------------------------------------------------------------
    @property
    def api_key(self) -> tuple[str, str]:
        username, secret = (self.pce_dir / "api_key").read_text(encoding="utf-8").split()
        return username, secret

    def environment(self) -> dict[str, str]:
        username, secret = self.api_key
        info = self.pce.info
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ILLUMIO_PCE_HOST": info["host"],
            "ILLUMIO_PCE_PORT": str(info["port"]),
            "ILLUMIO_PCE_CA_PATH": info["ca"],
            "ILLUMIO_API_KEY_USERNAME": username,
            "ILLUMIO_API_KEY_SECRET": secret,
        }

    def pairing_vars(self, profile: str, **more: object) -> list[str]:
        """-e arguments for role microseg.illumio.ven against this lab (as one JSON document)."""
        variables = {
            "ven_management_server": self.pce.management_server,
            "ven_pairing_profile": profile,
            "ven_ca_file": self.pce.info["ca"],
            **more,
        }
        return ["-e", json.dumps(variables)]

    def playbook(
        self, playbook: str, *args: str, timeout: int = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        command = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(self.state_dir / "inventory.yml"),
            str(REPO / playbook),
            *args,
        ]
        return subprocess.run(
            command,
            env={**self.environment(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )

    def run_tool(self, tool: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        """An Ansible command (ansible-inventory, ansible, ...) with the lab's environment."""
        command = [str(Path(sys.executable).parent / tool), *args]
        return subprocess.run(
            command, env=self.environment(), capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
        )

    def pairing_keys_made(self) -> int:
        """How many pairing keys the lab PCE has issued (from its database)."""
        with sqlite3.connect(self.pce_dir / "pce.sqlite3") as db:
            return db.execute("SELECT COUNT(*) FROM ven_pairing_keys").fetchone()[0]

    def script_folder_stamp(self, host: str) -> str:
        """Inode and mtime of the pairing script's folder, which changes whenever the script is fetched."""
        return self.exec(host, "stat", "-c", "%i %Y", "/opt/illumio_ven_data/tmp").strip()

    def exec(self, host: str, *command: str) -> str:
        return self.hostlab("exec", host, "--", *command).stdout

    def host_lab(self):
        """These hosts as tests/hosts' HostLab (addresses, ssh, connect, listen), for traffic between them."""
        sys.path.insert(0, str(REPO / "tests" / "hosts"))
        from hostlab_support import HostLab  # here, not at the top: only callers that send traffic need tests/hosts

        view = HostLab(self.state_dir, self.bridge, self.subnet, self.hosts)
        view.addresses = {row["name"]: row for row in json.loads(self.hostlab("list", "--json").stdout)}
        return view


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {'host': {'ok': 3, 'changed': 0, ...}} (the last recap of the output)."""
    found: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap, found = True, {}
            continue
        if in_recap and ":" in line and "=" in line:
            host, counters = line.split(":", 1)
            found[host.strip()] = {k: int(v) for k, v in (pair.split("=") for pair in counters.split())}
    return found
