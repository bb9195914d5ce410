"""README.md's "Try it offline with the lab PCE", pasted as written into bash, the way a new user does it.

The commands come from the README itself (the section's bash blocks: the quick start, then the stop), so the test
follows the README when it changes. They run in a clean copy of the checkout, with an empty HOME, a fresh PATH
(no project virtualenv, no pyenv) and none of the project's ANSIBLE_* / ILLUMIO_* settings; pip downloads what the
README installs. Then the stop block, and nothing may be left running.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, copy_source_tree

SECTION = "## Try it offline with the lab PCE"
MAX_COMMANDS = 5
LAB_ADDRESS = ("127.0.0.1", 8443)  # where the README's lab listens
# A new user's PATH: what login shells get on Debian, nothing of this project or of root's dotfiles.
FRESH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QUICKSTART_TIMEOUT_SECONDS = 1500
MARKER = "=== quick-start test: next part ==="


def readme_blocks(text: str) -> list[str]:
    """The bash blocks of the quick-start section, in order."""
    start = text.index(SECTION)
    following = text.find("\n## ", start + len(SECTION))
    section = text[start : following if following != -1 else len(text)]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def checked(block: str, name: str) -> str:
    """The block's lines as written, each stopping the session when it fails - also inside an `a && b` line, where
    bash's errexit would go on."""
    return "\n".join(
        f'{{ {line}\n}} || {{ echo "{name} line {number} failed: {line}" >&2; exit 1; }}'
        for number, line in enumerate(commands(block), start=1)
    )


def machine_environment(home: Path) -> dict[str, str]:
    """What a new shell of a new user has: HOME, PATH, a locale, and the machine's own pip and proxy settings."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("PIP_") or name.lower() in ("http_proxy", "https_proxy", "no_proxy")
    }
    return {**kept, "HOME": str(home), "PATH": FRESH_PATH, "LANG": "C.UTF-8", "USER": "root", "SHELL": "/bin/bash"}


def port_open(address: tuple[str, int]) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(address) == 0


def lab_processes(home: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pcelab" in line and str(home) in line:
            found.append(line)
    return found


def bash(script: str, cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def blocks() -> list[str]:
    found = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 2, f"expected the quick start and the stop block in {SECTION!r}, found {len(found)}"
    return found


@pytest.fixture(scope="module")
def quickstart(blocks, tmp_path_factory):
    """One shell session, as a user has it: the quick start, everything again but the virtualenv's creation (the
    lab is up, the policy in place), then the stop block. Each part's output is told apart by a marker line."""
    if port_open(LAB_ADDRESS):
        pytest.fail(f"something already listens on {LAB_ADDRESS}: the quick start's lab needs that port")
    clone = copy_source_tree(tmp_path_factory.mktemp("clone") / "illumio")
    home = tmp_path_factory.mktemp("home")
    secret_file = home.parent / "secret-seen-by-the-shell"
    again = blocks[0].replace(commands(blocks[0])[0], ". ~/microseg-try/bin/activate")
    session = "\n".join(
        [
            checked(blocks[0], "quick start"),
            f'printf %s "$ILLUMIO_API_KEY_SECRET" > {secret_file}',  # the test's own line: what to look for
            f"echo {MARKER}",
            f"cd {clone}",
            checked(again, "quick start again"),
            f"echo {MARKER}",
            checked(blocks[1], "stop"),
        ]
    )
    run = bash(session, clone, machine_environment(home), QUICKSTART_TIMEOUT_SECONDS)
    (home.parent / "session.log").write_text(run.stdout + "\n--- stderr ---\n" + run.stderr)
    parts = run.stdout.split(MARKER + "\n")
    yield {
        "run": run,
        "parts": parts + [""] * (3 - len(parts)),
        "home": home,
        "secret": secret_file.read_text() if secret_file.exists() else None,
    }
    for line in lab_processes(home):  # only when the session failed before its stop: leave nothing behind
        subprocess.run(["pkill", "-f", line.strip()], check=False)


def failure(quickstart) -> str:
    run = quickstart["run"]
    return f"exit {run.returncode}\n{run.stdout[-6000:]}\n{run.stderr[-4000:]}"


def test_the_quick_start_is_at_most_five_commands(blocks):
    assert 0 < len(commands(blocks[0])) <= MAX_COMMANDS, commands(blocks[0])


def test_the_quick_start_works_as_written(quickstart):
    assert quickstart["run"].returncode == 0, failure(quickstart)
    first = quickstart["parts"][0]
    assert "pcelab listening on https://" in first
    assert "demo org: 6 workload(s) created" in first
    assert "check mode would create 5 labels" in first and "second run changed 0 labels" in first
    assert "PLAY [Policy as code]" in first
    # The inventory graph shows the demo org's workloads in their label groups.
    for group in ("@role_web:", "@env_prod:", "@managed:"):
        assert group in first, first[-3000:]
    assert "web1.demo.example" in first


def test_the_quick_start_is_quiet_and_shows_no_secret(quickstart):
    run = quickstart["run"]
    text = run.stdout + run.stderr
    warnings = [line for line in text.splitlines() if "WARNING]" in line or "Warning:" in line]
    assert warnings == []
    assert quickstart["secret"], "the shell did not get the API key"
    assert quickstart["secret"] not in text, "the API key secret is handed to the shell by eval, never printed"


def test_running_it_again_changes_nothing(quickstart):
    assert quickstart["run"].returncode == 0, failure(quickstart)
    again = quickstart["parts"][1]
    assert "pcelab already running" in again
    assert "demo org: 0 workload(s) created" in again
    assert "nothing to provision: the PCE already matches three_tier.yml" in again


def test_the_stop_block_stops_the_lab(quickstart):
    assert quickstart["run"].returncode == 0, failure(quickstart)
    assert "pcelab stopped" in quickstart["parts"][2]
    assert not port_open(LAB_ADDRESS)
    assert lab_processes(quickstart["home"]) == []
