#!/usr/bin/env python3
"""Run a command against a throwaway lab PCE.

    python tools/with_lab.py [--keep-dir DIR] -- COMMAND [ARGS...]

Starts `pcelab serve` over TLS on a free loopback port with a private data folder, creates an API key,
and runs COMMAND with the collection's connection variables set (ILLUMIO_PCE_HOST, ILLUMIO_PCE_PORT,
ILLUMIO_PCE_ORG_ID, ILLUMIO_API_KEY_USERNAME, ILLUMIO_API_KEY_SECRET, ILLUMIO_PCE_CA_PATH). The secret
travels only through the environment of COMMAND: never on a command line, never printed. The lab is
stopped and its folder removed when COMMAND ends, whatever the outcome.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_SECONDS = 90  # a start on a loaded machine can take tens of seconds


@dataclass
class LabPce:
    """Where a running lab PCE listens and how to authenticate to it."""

    host: str
    port: int
    org_id: int
    ca_path: str
    api_key_username: str
    api_key_secret: str
    data_dir: str

    def environment(self) -> dict[str, str]:
        return {
            "ILLUMIO_PCE_HOST": self.host,
            "ILLUMIO_PCE_PORT": str(self.port),
            "ILLUMIO_PCE_ORG_ID": str(self.org_id),
            "ILLUMIO_API_KEY_USERNAME": self.api_key_username,
            "ILLUMIO_API_KEY_SECRET": self.api_key_secret,
            "ILLUMIO_PCE_CA_PATH": self.ca_path,
        }

    def api(self, method: str, path: str, body=None):
        """Call the lab's API under /api/v2/orgs/ORG/ (TLS verified with the lab CA); the decoded answer."""
        url = f"https://{self.host}:{self.port}/api/v2/orgs/{self.org_id}/{path.lstrip('/')}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        token = base64.b64encode(f"{self.api_key_username}:{self.api_key_secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        context = ssl.create_default_context(cafile=self.ca_path)
        with urllib.request.urlopen(request, context=context, timeout=60) as answer:  # noqa: S310 - https only
            payload = answer.read()
        return json.loads(payload) if payload else None


def _pcelab_command() -> list[str]:
    # The console script installed next to this Python (the project venv) wins over whatever PATH holds.
    beside = Path(sys.executable).with_name("pcelab")
    found = str(beside) if beside.exists() else shutil.which("pcelab")
    return [found] if found else [sys.executable, "-m", "pcelab.cli"]


def _create_api_key(data_dir: Path) -> tuple[str, str]:
    done = subprocess.run(
        [*_pcelab_command(), "api-key", "create", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pcelab api-key create failed: {done.stderr.strip()}")
    username, secret = done.stdout.split()[:2]
    return username, secret


def _read_port(ready_file: Path) -> int:
    text = ready_file.read_text()
    try:
        return int(json.loads(text)["port"])
    except (ValueError, KeyError, TypeError):
        match = re.search(r":(\d+)\b", text)
        if not match:
            raise RuntimeError(f"cannot find the port in {ready_file}: {text!r}") from None
        return int(match.group(1))


def _wait_ready(process: subprocess.Popen, ready_file: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pcelab serve exited with status {process.returncode} before it was ready")
        if ready_file.exists() and ready_file.stat().st_size:
            return _read_port(ready_file)
        time.sleep(0.05)
    raise RuntimeError(f"pcelab serve was not ready within {READY_TIMEOUT_SECONDS} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_lab(data_dir: str | None = None, org_id: int = 1, log_path: str | None = None):
    """Yield a LabPce served from DATA_DIR (a fresh private folder when None)."""
    owned = data_dir is None
    folder = Path(data_dir or tempfile.mkdtemp(prefix="pcelab-"))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    username, secret = _create_api_key(folder)
    ready_file = folder / "ready"
    ready_file.unlink(missing_ok=True)
    log = open(log_path or folder / "serve.log", "ab")  # noqa: SIM115 - closed in finally
    command = [*_pcelab_command(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(folder)]
    command += ["--org-id", str(org_id), "--ready-file", str(ready_file)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _wait_ready(process, ready_file)
        yield LabPce("localhost", port, org_id, str(folder / "ca.pem"), username, secret, str(folder))
    finally:
        _stop(process)
        log.close()
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-dir", help="serve from this folder and keep it afterwards")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run (after --)")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    with running_lab(args.keep_dir) as lab:
        print(f"lab PCE at https://{lab.host}:{lab.port} (org {lab.org_id}, CA {lab.ca_path})", flush=True)
        return subprocess.run(command, env={**os.environ, **lab.environment()}, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
