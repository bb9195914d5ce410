"""Shared helpers of the VEN-side tests (pairing, VENs, agents, software, traffic)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_bundle(
    path: Path,
    packages: dict[str, bytes],
    release: str = "21.5.20",
    build: str = "8451",
    os_names: dict[str, list[str]] | None = None,
    manifest_overrides: dict | None = None,
    corrupt: str | None = None,
) -> Path:
    """Write a VEN software bundle: manifest.json plus the packages (file name -> content).

    Package type and arch come from the file name (.deb -> deb/x86_64, .rpm -> rpm/x86_64, .msi -> msi).
    `corrupt` names a file whose content differs from its manifest sha256.
    """
    os_names = os_names or {}
    entries = []
    for file, content in packages.items():
        pkg_type = file.rsplit(".", 1)[-1]
        default_os = {"deb": ["debian", "ubuntu"], "rpm": ["rhel", "centos"], "msi": ["windows"]}.get(pkg_type, ["any"])
        entries.append(
            {
                "file": file,
                "os": os_names.get(file, default_os),
                "arch": "x86_64",
                "pkg_type": pkg_type,
                "sha256": sha256(content),
            }
        )
    manifest = {"release": release, "build": build, "packages": entries, **(manifest_overrides or {})}
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "manifest.json", json.dumps(manifest).encode())
        for file, content in packages.items():
            _add(archive, file, content + (b"tampered" if file == corrupt else b""))
    return path


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


# --- end-to-end pairing in a scratch root ---------------------------------------------------------------
# Stand-in for dpkg on the test PATH: records its arguments and the VEN_* environment it got, then unpacks
# the "package" (a tar.gz) into the scratch root, as a real install would put files under /.
STUB_DPKG = """#!/bin/bash
set -eu
[ "$1" = "-i" ] || { echo "stub dpkg: only -i is supported" >&2; exit 2; }
env | grep -E '^(VEN_|PCELAB_CA_FILE=)' | sort >"$PCELAB_PAIR_ROOT/dpkg-env.txt"
printf '%s\\n' "$@" >"$PCELAB_PAIR_ROOT/dpkg-args.txt"
tar -xzf "$2" -C "$PCELAB_PAIR_ROOT"
"""

# illumio-ven-ctl inside the dummy package: `activate` pairs through the lab's agent API, with TLS verified
# against the CA the pairing script hands over in PCELAB_CA_FILE.
STUB_VEN_CTL = """#!/bin/bash
set -eu
[ "$1" = activate ] || { echo "stub illumio-ven-ctl: only activate is supported" >&2; exit 2; }
shift
printf '%s\n' "$@" >"$PCELAB_PAIR_ROOT/ctl-args.txt"
role=""
# Like the VEN: without --activation-code the code comes from the activation file the pairing script wrote.
cfg="$PCELAB_PAIR_ROOT/opt/illumio_ven_data/etc/agent_activation.cfg"
code="$(sed -n 's/^activation_code: *//p' "$cfg" 2>/dev/null || true)"
while [ $# -gt 0 ]; do
    case "$1" in
        --management-server) server="$2" ;;
        --activation-code) code="$2" ;;
        --role) role="$2" ;;
    esac
    shift 2
done
labels="{}"
[ -z "$role" ] || labels="{\\"role\\": \\"$role\\"}"
body="{\\"activation_code\\": \\"$code\\", \\"hostname\\": \\"e2e-host\\", \\"os_id\\": \\"debian-x86_64-bookworm\\",
 \\"agent_version\\": \\"21.5.20-8451\\", \\"labels\\": $labels,
 \\"interfaces\\": [{\\"name\\": \\"eth0\\", \\"address\\": \\"192.0.2.10\\", \\"cidr_block\\": 24}]}"
curl --fail-with-body --silent --show-error --cacert "$PCELAB_CA_FILE" -H 'Content-Type: application/json' \\
    --data "$body" "https://$server/lab/agent/v1/activate" >"$PCELAB_PAIR_ROOT/activation.json"
rm -f "$cfg"
"""


def dummy_package() -> bytes:
    """A tar.gz 'package' holding opt/illumio_ven/illumio-ven-ctl (the stub above)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = STUB_VEN_CTL.encode()
        info = tarfile.TarInfo("opt/illumio_ven/illumio-ven-ctl")
        info.size = len(data)
        info.mode = 0o755
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def scratch_host(root: Path, os_release: str = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n') -> Path:
    """A scratch root with /etc/os-release and a bin folder holding the stub dpkg; returns the bin folder."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release)
    bin_dir = root.parent / f"{root.name}-bin"
    bin_dir.mkdir()
    stub = bin_dir / "dpkg"
    stub.write_text(STUB_DPKG)
    stub.chmod(0o755)
    return bin_dir


# --- talking to a running lab (conftest's `lab` fixture) -------------------------------------------------------
def host_of(lab) -> str:
    """HOST:PORT of the lab, as --management-server takes it."""
    return lab.url.split("://", 1)[1].rstrip("/")


def agent_session(lab):
    """A session on the agent API: TLS verified against the lab CA, no API key (agents use their token)."""
    return lab.session(prefix="/lab/agent/v1", auth=None)


def new_label(api, key: str, value: str | None = None) -> dict:
    import uuid

    answer = api.post("/orgs/1/labels", json={"key": key, "value": value or f"{key}-{uuid.uuid4().hex[:8]}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def move_clock(lab, seconds: float) -> None:
    with lab.session(prefix="/lab/admin") as admin:
        offset = admin.get("/clock").json()["offset_seconds"]
        assert admin.put("/clock", json={"offset_seconds": offset + seconds}).status_code == 200


def wait_for(predicate, timeout: float = 10.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def pair_ven(lab, hostname: str = "web1", profile: dict | None = None, **facts) -> dict:
    """Create a profile and key through the API, activate a VEN with it; returns the activation answer."""
    with lab.session() as api, agent_session(lab) as agent:
        return pair_with(api, agent, hostname, profile, **facts)


def pair_with(api, agent, hostname: str = "web1", profile: dict | None = None, **facts) -> dict:
    import uuid

    fields = {"name": f"pp-{uuid.uuid4().hex[:8]}", "enforcement_mode": "idle", **(profile or {})}
    created = api.post("/orgs/1/pairing_profiles", json=fields)
    assert created.status_code == 201, created.text
    path = created.json()["href"]
    code = api.post(f"{path}/pairing_key", json={}).json()["activation_code"]
    body = {"activation_code": code, "hostname": hostname, "agent_version": "21.5.20-8451", **facts}
    answer = agent.post("/activate", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


class Prefixed:
    """The conftest `client` (TestClient) seen from another path prefix, e.g. the agent API."""

    def __init__(self, client, prefix: str):
        self.client, self.prefix = client, prefix

    def __getattr__(self, method: str):
        call = getattr(self.client, method)
        return lambda path, **kwargs: call(f"https://testserver{self.prefix}{path}", **kwargs)


def recorded_events(core, event_type: str) -> list[dict]:
    """Events the in-memory core recorded, oldest first (until the events endpoint serves them)."""
    import json

    with core.transaction() as db:
        rows = db.execute("SELECT doc FROM events WHERE event_type = ? ORDER BY seq", (event_type,)).fetchall()
    return [json.loads(row[0]) for row in rows]


def resource_hrefs(events: list[dict], kind: str) -> list[str]:
    return [c["resource"][kind]["href"] for e in events for c in e["resource_changes"] if kind in c["resource"]]


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on loopback that records the targets it tunnelled to."""

    def __init__(self):
        import socket
        import threading

        self.targets: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client) -> None:
        import socket
        import threading

        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            request += chunk
        method, target = request.split(b" ")[:2]
        if method != b"CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            client.close()
            return
        host, port = target.decode().rsplit(":", 1)
        self.targets.append(target.decode())
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pump(source, sink) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                sink.close()

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def close(self) -> None:
        self._listener.close()
