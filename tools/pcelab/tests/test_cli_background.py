"""`pcelab serve --background`, `pcelab stop` and `pcelab api-key create --env`: the quick start's commands."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_SECRET, API_USER, PCELAB
from pcelab import background, cli

# Run by bash after `eval "$(pcelab api-key create --env)"`: one verified call with nothing but the variables.
CHECK_WITH_VARIABLES = """
import base64, os, ssl, urllib.request
e = os.environ
url = f"https://{e['ILLUMIO_PCE_HOST']}:{e['ILLUMIO_PCE_PORT']}/api/v2/orgs/{e['ILLUMIO_PCE_ORG_ID']}/labels"
request = urllib.request.Request(url)
key = f"{e['ILLUMIO_API_KEY_USERNAME']}:{e['ILLUMIO_API_KEY_SECRET']}"
request.add_header("Authorization", "Basic " + base64.b64encode(key.encode()).decode())
tls = ssl.create_default_context(cafile=e["ILLUMIO_PCE_CA_PATH"])
print(urllib.request.urlopen(request, context=tls, timeout=10).status, e["ILLUMIO_PCE_HOST"])
"""


def pcelab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PCELAB, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def alive(pid: int) -> bool:
    """A process that runs (a zombie, reparented to an init that does not reap, counts as gone)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[0] != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "lab data"  # a space: every path must be passed and quoted whole
    yield folder
    if folder.exists():
        background.stop(folder)  # whatever a failed test left running


def test_background_start_env_key_already_running_and_stop(data_dir, tmp_path):
    extra_ready = tmp_path / "ready.json"
    started = pcelab("serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", "--background",
                     "--api-key", f"{API_USER}:{API_SECRET}", "--ready-file", str(extra_ready))  # fmt: skip
    assert started.returncode == 0, started.stderr
    info = json.loads((data_dir / "pcelab.ready").read_text())
    assert json.loads(extra_ready.read_text()) == info
    assert started.stdout == f"pcelab listening on {info['url']} ca={data_dir / 'ca.pem'}\n"
    pid = int((data_dir / "pcelab.pid").read_text())
    assert info["pid"] == pid and info["org_id"] == 1 and alive(pid)
    assert os.getsid(pid) == pid  # detached: a session of its own
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    log = data_dir / "pcelab.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert f"pcelab listening on {info['url']}" in log.read_text()
    assert API_SECRET not in Path(f"/proc/{pid}/cmdline").read_text()  # --api-key was stored, not passed on

    # A key created while the server runs works at once (same database), straight from eval.
    create = shlex.join([*PCELAB, "api-key", "create", "--data-dir", str(data_dir), "--env"])
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ILLUMIO_")}
    shell = subprocess.run(
        ["bash", "-c", f'eval "$({create})" && "$0" -c "$1"', sys.executable, CHECK_WITH_VARIABLES],
        capture_output=True, text=True, timeout=60, env=environment, check=False,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == "200 localhost\n"

    again = pcelab("serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", "--background")
    assert (again.returncode, again.stdout) == (0, f"pcelab already running on {info['url']}\n")
    assert int((data_dir / "pcelab.pid").read_text()) == pid

    stopped = pcelab("stop", "--data-dir", str(data_dir))
    assert (stopped.returncode, stopped.stdout) == (0, "pcelab stopped\n")
    assert not alive(pid) and not port_open(info["port"])
    assert not (data_dir / "pcelab.pid").exists() and not (data_dir / "pcelab.ready").exists()
    assert (data_dir / "pce.sqlite3").exists()  # the state stays

    twice = pcelab("stop", "--data-dir", str(data_dir))
    assert (twice.returncode, twice.stdout) == (0, "pcelab is not running\n")


def test_a_server_that_cannot_listen_fails_with_the_log_tail(data_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = pcelab("serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--background")
    assert started.returncode == 1 and started.stdout == ""
    assert f"the end of {data_dir / 'pcelab.log'}:" in started.stderr
    assert "Address already in use" in started.stderr
    assert not (data_dir / "pcelab.pid").exists() and not (data_dir / "pcelab.ready").exists()


def test_a_server_not_listening_in_time_is_ended(data_dir, monkeypatch, capsys):
    monkeypatch.setattr(background, "START_TIMEOUT_SECONDS", 0.0)
    assert background.start(["--listen", "127.0.0.1:0"], data_dir) == 1
    captured = capsys.readouterr()
    assert "did not start (not listening after 0 s)" in captured.err and captured.out == ""
    assert not (data_dir / "pcelab.pid").exists()
    assert background.running_server(data_dir) is None


def test_stale_pid_file_never_signals_another_process(data_dir):
    data_dir.mkdir()
    other_lab = str(data_dir.parent / "other")
    # Unrelated, and a pcelab server of another folder: neither is ours.
    sleepers = [
        subprocess.Popen(["sleep", "60"]),
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)", "pcelab", "serve", "--data-dir", other_lab]
        ),
    ]
    try:
        for sleeper in sleepers:
            (data_dir / "pcelab.pid").write_text(f"{sleeper.pid}\n")
            (data_dir / "pcelab.ready").write_text(json.dumps({"url": "https://127.0.0.1:1", "pid": sleeper.pid}))
            stopped = pcelab("stop", "--data-dir", str(data_dir))
            assert (stopped.returncode, stopped.stdout) == (0, "pcelab is not running\n")
            assert sleeper.poll() is None
            assert not (data_dir / "pcelab.pid").exists() and not (data_dir / "pcelab.ready").exists()
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_stop_kills_a_server_that_ignores_sigterm(data_dir, monkeypatch, capsys):
    data_dir.mkdir()
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, "
         "flush=True); time.sleep(60)", "-m", "pcelab.cli", "serve", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        stubborn.stdout.readline()  # SIGTERM is ignored from now on
        (data_dir / "pcelab.pid").write_text(f"{stubborn.pid}\n")
        monkeypatch.setattr(background, "STOP_TIMEOUT_SECONDS", 0.3)
        assert background.stop(data_dir) == 0
        assert stubborn.wait(timeout=5) == -signal.SIGKILL
        captured = capsys.readouterr()
        assert captured.out == "pcelab stopped\n" and "killing it" in captured.err
    finally:
        stubborn.kill()
        stubborn.wait()


def test_without_proc_the_command_line_comes_from_ps(tmp_path, monkeypatch):
    folder = tmp_path / "lab"
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "pcelab.cli", "serve", "--data-dir", str(folder)]
    )
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        monkeypatch.setattr(background, "PROC", tmp_path / "no-proc")
        assert background.is_server_of(fake.pid, folder)
        assert not background.is_server_of(fake.pid, tmp_path / "other")
        assert not background.is_server_of(sleeper.pid, folder)
    finally:
        for process in (fake, sleeper):
            process.kill()
            process.wait()
    assert not background.is_server_of(fake.pid, folder)


def test_background_needs_a_real_data_dir(capsys):
    assert cli.main(["serve", "--data-dir", ":memory:", "--background"]) == 2
    assert cli.main(["stop", "--data-dir", ":memory:"]) == 2
    assert "--background needs a real --data-dir" in capsys.readouterr().err


def test_api_key_create_env_without_a_server_uses_the_defaults(tmp_path, capsys):
    data_dir = tmp_path / "it's here"  # quoting must survive a quote, a space
    assert cli.main(["api-key", "create", "--data-dir", str(data_dir), "--env"]) == 0
    captured = capsys.readouterr()
    assert "no running server recorded in" in captured.err
    shell = subprocess.run(
        ["bash", "-c", captured.out + 'printf "%s|" "$ILLUMIO_PCE_HOST" "$ILLUMIO_PCE_PORT" "$ILLUMIO_PCE_ORG_ID" '
         '"$ILLUMIO_PCE_CA_PATH" "$ILLUMIO_API_KEY_USERNAME"'],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    host, port, org, ca, username, _ = shell.stdout.split("|")
    assert (host, port, org, ca) == ("localhost", "8443", "1", str(data_dir / "ca.pem"))
    assert re.fullmatch(r"api_[0-9a-f]{15}", username)

    # Without --env the output is what scripts parse today.
    assert cli.main(["api-key", "create", "--data-dir", str(data_dir)]) == 0
    assert re.fullmatch(r"api_[0-9a-f]{15} [0-9a-f]{64}\n", capsys.readouterr().out)


def test_serve_arguments_carry_every_serve_option():
    parser = cli.build_parser()
    given = ["serve", "--data-dir", "d", "--ready-file", "r", "--api-key", "u:s", "--background"]
    args = parser.parse_args([*given, "--listen", "[::1]:0", "--san", "a", "--san", "b", "--org-id", "3",
                              "--fault-rate", "0.25", "--fault-status", "429", "--http", "--access-log",
                              "--pce-fqdn", "pce.example"])  # fmt: skip
    serve = parser._subparsers._group_actions[0].choices["serve"]
    for action in serve._actions:
        if action.dest != "help":  # the test sets every option, so one added later must be passed on too
            assert getattr(args, action.dest) != action.default, action.dest
    assert vars(parser.parse_args([*given, *cli.serve_arguments(args)])) == vars(args)
