"""`pcelab serve --background` and `pcelab stop`: one detached lab server per data folder.

The files it keeps in the data folder:

- `pcelab.pid`: the server's process id, written by the starting process;
- `pcelab.ready`: the server's ready file (JSON: url, host, port, ca, pid, org_id), written once it listens;
- `pcelab.log`: the server's stdout and stderr, appended, mode 0600.

A process id is only trusted when its command line (/proc/PID/cmdline; `ps` where there is no /proc) is
`pcelab ... serve ... --data-dir` naming the same folder: a stale pid file whose number now belongs to another
process is removed, never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PID_FILE = "pcelab.pid"
READY_FILE = "pcelab.ready"
LOG_FILE = "pcelab.log"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.05
PROC = Path("/proc")


def folder(data_dir: str) -> Path:
    return Path(data_dir).resolve()


# --- is it our server? --------------------------------------------------------------------------------------
def command_line(pid: int) -> list[str] | None:
    """The arguments of a live process (None when it is gone, a zombie, or not readable)."""
    if not (PROC / "self").exists():
        return _command_line_from_ps(pid)
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    arguments = [part.decode(errors="replace") for part in raw.split(b"\0")]
    if arguments and arguments[-1] == "":
        arguments.pop()
    return arguments or None  # a zombie's command line is empty


def _command_line_from_ps(pid: int) -> list[str] | None:
    """Without /proc (macOS): ps's view, split at spaces; a path with spaces then never matches (safe side)."""
    try:
        command = ["ps", "-ww", "-o", "command=", "-p", str(pid)]
        shown = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return shown.split() or None


def _data_dir_argument(arguments: list[str]) -> str | None:
    for index, argument in enumerate(arguments):
        if argument == "--data-dir" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith("--data-dir="):
            return argument.split("=", 1)[1]
    return None


def is_server_of(pid: int, data_dir: Path) -> bool:
    """Whether PID is a live `pcelab serve` for DATA_DIR."""
    if pid <= 0 or pid == os.getpid():
        return False
    arguments = command_line(pid)
    if not arguments:
        return False
    if "serve" not in arguments:
        return False
    command = arguments[: arguments.index("serve")]  # python [options] -m pcelab.cli, or .../bin/pcelab
    served = _data_dir_argument(arguments)
    if served is None or not any(Path(part).name == "pcelab" or part == "pcelab.cli" for part in command):
        return False
    if not os.path.isabs(served):
        try:
            served = os.path.join(os.readlink(PROC / str(pid) / "cwd"), served)
        except OSError:
            return False
    return os.path.realpath(served) == os.path.realpath(data_dir)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_ready(data_dir: Path) -> dict | None:
    try:
        info = json.loads((data_dir / READY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def running_server(data_dir: Path) -> tuple[int, dict | None] | None:
    """(pid, ready-file info) of the server running for DATA_DIR, or None. The pid file is asked first."""
    ready = read_ready(data_dir)
    ready_pid = ready.get("pid") if ready else None
    for pid in (_read_pid(data_dir / PID_FILE), ready_pid):
        if isinstance(pid, int) and is_server_of(pid, data_dir):
            return pid, (ready if ready_pid == pid else None)
    return None


def _remove_state(data_dir: Path) -> None:
    for name in (PID_FILE, READY_FILE):
        (data_dir / name).unlink(missing_ok=True)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


# --- start ----------------------------------------------------------------------------------------------------
def listening_line(info: dict) -> str:
    ca = info.get("ca")
    return f"pcelab listening on {info['url']}" + (f" ca={ca}" if ca else " (plain HTTP)")


def start(serve_arguments: list[str], data_dir: Path, ready_copy: str | None = None) -> int:
    """Start `pcelab serve SERVE_ARGUMENTS` detached for DATA_DIR; return once it listens (0) or failed (1)."""
    running = running_server(data_dir)
    if running:
        info = running[1] or {}
        if ready_copy and info:
            _write_atomically(Path(ready_copy), json.dumps(info))
        print(f"pcelab already running on {info.get('url', f'pid {running[0]}')}")
        return 0
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_state(data_dir)  # stale: no server of this folder runs
    ready_file, log_file = data_dir / READY_FILE, data_dir / LOG_FILE
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(log, 0o600)  # also when an older log was created with other permissions
        log_start = os.fstat(log).st_size
        command = [sys.executable, "-m", "pcelab.cli", "serve", *serve_arguments]
        command += ["--data-dir", str(data_dir), "--ready-file", str(ready_file)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=data_dir,
            start_new_session=True,
        )
    finally:
        os.close(log)
    _write_atomically(data_dir / PID_FILE, f"{process.pid}\n")
    problem = _wait_listening(process, ready_file)
    if problem:
        _stop_child(process)
        _remove_state(data_dir)
        print(f"pcelab: the server did not start ({problem}); the end of {log_file}:", file=sys.stderr)
        print(_log_tail(log_file, log_start), file=sys.stderr)
        return 1
    info = read_ready(data_dir) or {}
    if ready_copy:
        _write_atomically(Path(ready_copy), json.dumps(info))
    print(listening_line(info), flush=True)
    return 0


def _wait_listening(process: subprocess.Popen, ready_file: Path) -> str | None:
    """None once the child's ready file names it, else why not."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            if json.loads(ready_file.read_text()).get("pid") == process.pid:
                return None
        except (OSError, ValueError, AttributeError):
            pass
        if process.poll() is not None:
            return f"it exited with status {process.returncode}"
        if time.monotonic() > deadline:
            return f"not listening after {START_TIMEOUT_SECONDS:g} s"
        time.sleep(POLL_SECONDS)


def _stop_child(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _log_tail(log_file: Path, offset: int) -> str:
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as error:
        return f"(cannot read the log: {error})"
    lines = text.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(nothing was logged)"


# --- stop -----------------------------------------------------------------------------------------------------
def stop(data_dir: Path) -> int:
    running = running_server(data_dir)
    if running is None:
        _remove_state(data_dir)
        print("pcelab is not running")
        return 0
    pid = running[0]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _gone(pid, data_dir, STOP_TIMEOUT_SECONDS):
        print(f"pcelab: pid {pid} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:g} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _gone(pid, data_dir, 5.0)
    _remove_state(data_dir)
    print("pcelab stopped")
    return 0


def _gone(pid: int, data_dir: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_server_of(pid, data_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True
