"""flow_upload survives its PCE dying mid-upload: SIGKILL the lab PCE, restart it, upload again, exactly once.

The lab runs in its own data folder for these tests (the session lab is shared). In the first test the fault proxy in
front of the PCE kills it right after it stored batch 4 and drops the answer: the hard case, every time. In
the second the PCE is killed at a random moment during batch 4, so that batch was either stored with its
answer lost or never stored. Either way the second run has to settle it against the PCE and finish. A traffic
query then must show every generated flow once: the same number of rows and, for every flow, exactly the
connections that were generated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_proxy import FaultProxy
from with_lab import LabPce, _create_api_key, _pcelab_command, _wait_ready

FLOWS = 20000
FILES = 4
BATCH = 1000
START = int(time.time()) - 6 * 3600


def flow_line(i: int) -> tuple[str, int]:
    connections = 1 + i % 5
    first = START + i % 3000
    return (
        f"10.30.{i // 250}.{i % 250 + 1},10.31.0.1,{1000 + i % 50},6,{connections},{first},{first + i % 90}",
        connections,
    )


def write_spool(folder: Path) -> dict[str, int]:
    """FLOWS flows in FILES spool files; {src ip: connections} of what was generated."""
    folder.mkdir(mode=0o700)
    expected, per_file = {}, FLOWS // FILES
    for number in range(FILES):
        lines = []
        for i in range(number * per_file, (number + 1) * per_file):
            line, connections = flow_line(i)
            lines.append(line)
            expected[line.split(",", maxsplit=1)[0]] = connections
        path = folder / f"flows-20261123T0{number}0000Z-{number}.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    return expected


class Lab:
    """A lab PCE process of our own that can be killed and started again on the same folder and port."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(mode=0o700)
        self.username, self.secret = _create_api_key(folder)
        self.port = 0
        self.process = None

    def start(self):
        ready = self.folder / "ready"
        ready.unlink(missing_ok=True)
        command = [*_pcelab_command(), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.folder)]
        command += ["--org-id", "1", "--ready-file", str(ready)]
        log = open(self.folder / "serve.log", "ab")  # noqa: SIM115 - the process holds it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.port = _wait_ready(self.process, ready)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def pce(self) -> LabPce:
        return LabPce(
            "localhost", self.port, 1, str(self.folder / "ca.pem"), self.username, self.secret, str(self.folder)
        )


def playbook(path: Path, spool: Path, result: Path, max_retries: int) -> Path:
    path.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - microseg.illumio.flow_upload:\n"
        f"        spool_dir: {spool}\n"
        f"        batch_size: {BATCH}\n"
        f"        max_retries: {max_retries}\n"
        "      register: upload\n"
        "      ignore_errors: true\n"
        "    - ansible.builtin.copy:\n"
        "        content: '{{ upload | to_json }}'\n"
        f"        dest: {result}\n"
        "        mode: '0600'\n"
    )
    return path


def ansible(lab: Lab, collections_path: Path, book: Path, port: int | None = None) -> subprocess.Popen:
    environment = {
        **os.environ,
        **lab.pce.environment(),
        "ILLUMIO_PCE_PORT": str(port or lab.port),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(book),
    ]
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cutting_proxy(lab: Lab, cut_at: int) -> tuple[FaultProxy, object]:
    """The fault proxy in front of the lab; when the answer to upload number `cut_at` comes back from the PCE,
    which has committed it by then, it SIGKILLs the PCE and closes the client's connection instead."""
    proxy = FaultProxy(lab.folder, lab.port)
    rule = proxy.lose("POST", r"/bulk_traffic_flows$", "drop", skip=cut_at - 1, on_answer=lambda path: lab.kill())
    return proxy, rule


def uploaded_lines(spool: Path) -> int:
    """Lines the progress records account for, done files included (what the PCE answered for)."""
    total = 0
    for progress in [*spool.glob("*.progress"), *spool.glob("done/*.progress")]:
        try:
            total += json.loads(progress.read_text())["next_line"]
        except (OSError, ValueError):
            pass
    return total


def query_all(pce: LabPce) -> list[dict]:
    body = {
        "start_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START - 60)),
        "end_date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 4000)),
        "sources": {"include": [[{"ip_address": "10.30.0.0/16"}]], "exclude": []},
        "destinations": {"include": [], "exclude": []},
        "services": {"include": [], "exclude": []},
        "policy_decisions": [],
        "max_results": 200000,
    }
    job = pce.api("POST", "traffic_flows/async_queries", body)
    uuid = job["href"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 120
    while job["status"] != "completed":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = pce.api("GET", f"traffic_flows/async_queries/{uuid}")
    return pce.api("GET", f"traffic_flows/async_queries/{uuid}/download")


def check_exactly_once(lab: Lab, spool: Path, expected: dict[str, int]):
    assert sorted(os.listdir(spool / "done")) == sorted(
        name for name in os.listdir(spool / "done") if name.endswith((".csv", ".progress"))
    )
    assert len(list((spool / "done").glob("*.csv"))) == FILES
    rows = query_all(lab.pce)
    found = {}
    for row in rows:
        found[row["src"]["ip"]] = found.get(row["src"]["ip"], 0) + row["num_connections"]
    assert len(rows) == FLOWS
    assert sum(row["num_connections"] for row in rows) == sum(expected.values())
    assert found == expected


def test_answer_lost_after_commit_then_sigkill_restart_gives_every_flow_exactly_once(tmp_path, collections_path):
    """The hard case made certain: the PCE stores batch 4, is killed before its answer reaches the module."""
    spool = tmp_path / "spool"
    expected = write_spool(spool)
    lab = Lab(tmp_path / "lab")
    lab.start()
    proxy, cut = cutting_proxy(lab, cut_at=4)
    try:
        book = playbook(tmp_path / "first.yml", spool, tmp_path / "first.json", 1)
        output = ansible(lab, collections_path, book, proxy.port).communicate(timeout=300)[0]
        assert cut.fired.is_set(), output
        first_result = json.loads((tmp_path / "first.json").read_text())
        assert first_result.get("failed") is True, output
        assert uploaded_lines(spool) == 3 * BATCH  # answered; batch 4 is stored on the PCE but unanswered

        lab.start()  # same data folder, same port, behind the same relay
        book = playbook(tmp_path / "second.yml", spool, tmp_path / "second.json", 5)
        output = ansible(lab, collections_path, book, proxy.port).communicate(timeout=600)[0]
        second = json.loads((tmp_path / "second.json").read_text())
        assert second.get("failed") is not True, output
        assert (second["resumed_batches"], second["skipped_present_batches"], second["resent_batches"]) == (1, 1, 0)
        assert second["flows_sent"] == FLOWS - 4 * BATCH
        check_exactly_once(lab, spool, expected)
    finally:
        proxy.close()
        lab.stop()


def test_sigkill_mid_upload_then_restart_gives_every_flow_exactly_once(tmp_path, collections_path):
    spool = tmp_path / "spool"
    expected = write_spool(spool)
    lab = Lab(tmp_path / "lab")
    lab.start()
    try:
        first = ansible(lab, collections_path, playbook(tmp_path / "first.yml", spool, tmp_path / "first.json", 1))
        # Kill once the upload is well under way (a few batches answered) and before it ends.
        deadline = time.monotonic() + 300
        while uploaded_lines(spool) < 3 * BATCH and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        # Somewhere in the next request: before it left, while the PCE works on it, or as its answer comes.
        time.sleep(random.uniform(0, 0.12))
        assert first.poll() is None, "the upload ended before the PCE could be killed: " + first.stdout.read()
        lab.kill()
        killed_at = uploaded_lines(spool)
        output = first.communicate(timeout=300)[0]
        first_result = json.loads((tmp_path / "first.json").read_text())
        assert first_result.get("failed") is True, output
        assert killed_at < FLOWS

        lab.start()  # same data folder, same port
        second = ansible(lab, collections_path, playbook(tmp_path / "second.yml", spool, tmp_path / "second.json", 5))
        output = second.communicate(timeout=600)[0]
        second_result = json.loads((tmp_path / "second.json").read_text())
        assert second_result.get("failed") is not True, output
        assert second_result["resumed_batches"] >= 1, second_result
        print(
            f"\nkilled after {killed_at} lines answered; first run: {first_result['msg'][:300]}; second run: "
            f"sent {second_result['flows_sent']}, resumed {second_result['resumed_batches']}, found on the PCE "
            f"{second_result['skipped_present_batches']}, resent {second_result['resent_batches']}"
        )
        check_exactly_once(lab, spool, expected)
    finally:
        lab.stop()
