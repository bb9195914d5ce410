"""A lab PCE for VEN stand-in tests: started detached on the hostlab bridge, with the stand-in's VEN library.

    python3 tests/vensim/vensimlab.py start --data-dir DIR --listen 10.213.250.1:0
    python3 tests/vensim/vensimlab.py pairing-key --data-dir DIR [--profile NAME] [--setting KEY=JSON ...]
    python3 tests/vensim/vensimlab.py stop --data-dir DIR

`start` reuses a lab already serving from DIR. It builds the stand-in packages (build.py) when they are
missing, installs both releases into the lab's VEN library (the older one is the default) and writes
DIR/lab.json: url, host, port, management_server, ca, pid, releases. The API key lives in DIR/api_key
(0600) and never appears on a command line or in output. `pairing-key` prints
{"profile_id", "profile_href", "activation_code"}: the code is a secret, keep it out of logs.
Used by tests/vensim/test_vensim.py and the molecule scenarios in extensions/molecule/.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_sibling(name: str, alias: str):
    """Import HERE/NAME.py as module ALIAS: a plain `import build` could find another package's `build`."""
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


vensim_build = load_sibling("build", "vensim_build")

READY_SECONDS = 90  # a start on a loaded machine can take tens of seconds


def pcelab_command() -> list[str]:
    found = shutil.which("pcelab") or shutil.which("pcelab", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "pcelab"]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class LabPce:
    """A running lab PCE described by DIR/lab.json, with API calls authenticated by DIR/api_key."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.info = json.loads((self.data_dir / "lab.json").read_text(encoding="utf-8"))
        username, secret = (self.data_dir / "api_key").read_text(encoding="utf-8").split()
        self.auth = "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()
        self.context = ssl.create_default_context(cafile=self.info["ca"])
        self.reused = False

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def management_server(self) -> str:
        return self.info["management_server"]

    def api(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        """Call /api/v2/orgs/1{path} (or /api/v2{path} for an href); returns (status, parsed JSON or None)."""
        data = None if body is None else json.dumps(body).encode()
        prefix = "/api/v2" if path.startswith("/orgs/") else "/api/v2/orgs/1"
        request = urllib.request.Request(f"{self.url}{prefix}{path}", data=data, method=method)  # noqa: S310 - https
        request.add_header("Authorization", self.auth)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as answer:  # noqa: S310 - https
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, payload = error.code, error.read()
        return status, json.loads(payload) if payload else None

    def pairing_key(self, profile: str = "vensim", **settings: object) -> dict:
        """A new activation code of pairing profile PROFILE (created with SETTINGS when missing)."""
        for _attempt in range(3):  # two hosts asking at once may race to create the profile: look again
            status, found = self.api("GET", f"/pairing_profiles?name={profile}")
            match = [p for p in (found or []) if p.get("name") == profile] if status == 200 else []
            if match:
                href = match[0]["href"]
                break
            body = {"name": profile, "enforcement_mode": "visibility_only", **settings}
            status, created = self.api("POST", "/pairing_profiles", body)
            if status == 201:
                href = created["href"]
                break
        else:
            raise RuntimeError(f"cannot create pairing profile {profile}: {status} {created}")
        status, key = self.api("POST", f"{href}/pairing_key", {})
        if status != 201:
            raise RuntimeError(f"cannot create a pairing key: {status} {key}")
        return {
            "profile_id": int(href.rsplit("/", 1)[1]),
            "profile_href": href,
            "activation_code": key["activation_code"],
        }

    def workloads(self, hostname: str) -> list[dict]:
        status, found = self.api("GET", f"/workloads?hostname={hostname}")
        return [w for w in found or [] if w.get("hostname") == hostname] if status == 200 else []


def start(data_dir: Path, listen: str, versions: tuple[str, ...] = vensim_build.DEFAULT_VERSIONS) -> LabPce:
    """Serve a lab PCE from DATA_DIR on LISTEN (reused when one already runs there); returns it."""
    data_dir = Path(data_dir).absolute()
    info_path = data_dir / "lab.json"
    if info_path.exists():
        pid = json.loads(info_path.read_text(encoding="utf-8")).get("pid", 0)
        if pid and pid_alive(pid):
            lab = LabPce(data_dir)
            lab.reused = True
            return lab
        info_path.unlink()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = data_dir / "api_key"
    if not key_path.exists():
        created = subprocess.run(
            [*pcelab_command(), "api-key", "create", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(" ".join(created.stdout.split()[:2]) + "\n")
    releases = install_library(data_dir, versions)
    host = listen.rsplit(":", 1)[0].strip("[]")
    ready = data_dir / "ready"
    ready.unlink(missing_ok=True)
    with open(data_dir / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [
                *pcelab_command(),
                "serve",
                "--data-dir",
                str(data_dir),
                "--listen",
                listen,
                "--san",
                host,
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_SECONDS
    while not (ready.exists() and ready.stat().st_size):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"pcelab serve did not start; see {data_dir / 'serve.log'}")
        time.sleep(0.05)
    port = json.loads(ready.read_text(encoding="utf-8"))["port"]
    server = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    info = {
        "url": f"https://{server}",
        "host": host,
        "port": port,
        "management_server": server,
        "ca": str(data_dir / "ca.pem"),
        "pid": process.pid,
        "releases": releases,
    }
    info_path.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return LabPce(data_dir)


def install_library(data_dir: Path, versions: tuple[str, ...]) -> list[str]:
    """Both stand-in releases in the lab's VEN library (built first when missing); the first is the default."""
    out = vensim_build.DEFAULT_OUT
    bundles = [out / f"illumio-ven-bundle-{version}.tar.gz" for version in versions]
    sources = [HERE / "vensim.py", HERE / "illumio-ven-ctl", HERE / "build.py", *(HERE / "package").iterdir()]
    newest_source = max(source.stat().st_mtime for source in sources)
    if not all(bundle.exists() and bundle.stat().st_mtime >= newest_source for bundle in bundles):
        vensim_build.build(out, versions)  # missing, or older than the stand-in's sources
    library = data_dir / "ven_software"
    for version, bundle in zip(versions, bundles, strict=True):
        if not (library / version).exists():
            subprocess.run(
                [*pcelab_command(), "ven-software-install", "--data-dir", str(data_dir), str(bundle)],
                capture_output=True,
                check=True,
            )
    subprocess.run(
        [*pcelab_command(), "ven-software", "default", versions[0], "--data-dir", str(data_dir)],
        capture_output=True,
        check=True,
    )
    return list(versions)


def stop(data_dir: Path, remove: bool = False) -> None:
    info_path = Path(data_dir) / "lab.json"
    if info_path.exists():
        pid = json.loads(info_path.read_text(encoding="utf-8")).get("pid", 0)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        info_path.unlink()
    if remove:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("start")
    up.add_argument("--data-dir", required=True, type=Path)
    up.add_argument("--listen", required=True, help="HOST:PORT, usually the hostlab bridge address, port 0")
    key = sub.add_parser("pairing-key")
    key.add_argument("--data-dir", required=True, type=Path)
    key.add_argument("--profile", default="vensim")
    key.add_argument("--setting", action="append", default=[], help="KEY=JSON for a new profile")
    down = sub.add_parser("stop")
    down.add_argument("--data-dir", required=True, type=Path)
    down.add_argument("--remove", action="store_true", help="also delete the data folder")
    args = parser.parse_args(argv)
    if args.command == "start":
        lab = start(args.data_dir, args.listen)
        print(json.dumps({**lab.info, "reused": lab.reused}))
    elif args.command == "pairing-key":
        settings = {}
        for item in args.setting:
            name, value = item.partition("=")[::2]
            settings[name] = json.loads(value)
        print(json.dumps(LabPce(args.data_dir).pairing_key(args.profile, **settings)))
    else:
        stop(args.data_dir, args.remove)
    return 0


if __name__ == "__main__":
    sys.exit(main())
