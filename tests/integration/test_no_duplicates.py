"""Issue 17 against the lab PCE: lost answers and concurrent runs duplicate nothing, and results say what happened.

Lost answers: the fault proxy (fault_proxy.py) relays each request to the lab, and for the first create of a
play lets the lab store it, then drops the connection (or answers 502) instead of passing the answer on. The
play must succeed, report the object as created with its href, and the lab must hold it once.

Concurrent runs: the same play is started twice at once (two ansible-playbook processes). Both must succeed and
the lab must end in the state one run makes: every label, workload and IP list once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fault_proxy import FaultProxy

COUNT = 50


@pytest.fixture
def proxy(lab):
    relay = FaultProxy(lab.data_dir, lab.port)
    yield relay
    relay.close()


def playbook(path: Path, tasks: str) -> Path:
    path.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n" + tasks)
    return path


def start(lab, collections_path: Path, book: Path, port: int | None = None, extra=None) -> subprocess.Popen:
    environment = {
        **os.environ,
        **lab.environment(),
        "ILLUMIO_PCE_PORT": str(port or lab.port),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }
    command = [str(Path(sys.executable).with_name("ansible-playbook"))]
    command += extra or ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    command.append(str(book))
    return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(lab, collections_path, book, port=None) -> tuple[int, str]:
    process = start(lab, collections_path, book, port)
    output = process.communicate(timeout=600)[0]
    return process.returncode, output


def task(module: str, args: dict, result: Path | None = None) -> str:
    text = f"    - microseg.illumio.{module}: {json.dumps(args)}\n"
    if result is None:
        return text
    return (
        text + "      register: outcome\n      ignore_errors: true\n"
        "    - ansible.builtin.copy:\n"
        "        content: '{{ outcome | to_json }}'\n"
        f"        dest: {result}\n"
        "        mode: '0600'\n"
    )


def named(lab, collection: str, field: str, value: str) -> list[dict]:
    return [doc for doc in lab.api("GET", f"{collection}?max_results=5000") if doc.get(field) == value]


def live_workloads(lab, hostname: str) -> list[dict]:
    return [doc for doc in named(lab, "workloads", "hostname", hostname) if not doc.get("deleted")]


# --- lost answers ------------------------------------------------------------------------------------------------
CREATES = {
    # case: (module, args, method and path of the create, how to find what it made: collection, field, value)
    "label": ("label", {"key": "app", "value": "{tag}"}, ("POST", r"/labels$"), ("labels", "value")),
    "workload": ("workload", {"hostname": "{tag}.example"}, ("POST", r"/workloads$"), ("workloads", "hostname")),
    "workload_bulk": (
        "workload_bulk",
        {"workloads": [{"hostname": "{tag}.example"}]},
        ("PUT", r"/workloads/bulk_create$"),
        ("workloads", "hostname"),
    ),
    "ip_list": (
        "ip_list",
        {"name": "{tag}", "ip_ranges": ["10.1.0.0/16"]},
        ("POST", r"/sec_policy/draft/ip_lists$"),
        ("sec_policy/draft/ip_lists", "name"),
    ),
    "service": (
        "service",
        {"name": "{tag}", "service_ports": [{"port": 8443, "proto": "tcp"}]},
        ("POST", r"/sec_policy/draft/services$"),
        ("sec_policy/draft/services", "name"),
    ),
    "rule_set": (
        "rule_set",
        {
            "name": "{tag}",
            "rules": [{"providers": ["ams"], "consumers": ["ams"], "services": [{"port": 22, "proto": "tcp"}]}],
        },
        ("POST", r"/sec_policy/draft/rule_sets$"),
        ("sec_policy/draft/rule_sets", "name"),
    ),
    "pairing_profile": (
        "pairing_profile",
        {"name": "{tag}"},
        ("POST", r"/pairing_profiles$"),
        ("pairing_profiles", "name"),
    ),
}


def _filled(value, tag):
    return json.loads(json.dumps(value).replace("{tag}", tag))


@pytest.mark.parametrize("loss", ["drop", 502])
@pytest.mark.parametrize("case", sorted(CREATES))
def test_create_whose_answer_is_lost_is_made_once_and_reported(lab, proxy, collections_path, tmp_path, case, loss):
    module, args, (method, path), (collection, field) = CREATES[case]
    tag = f"lost-{case.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    args = _filled(args, tag)
    rule = proxy.lose(method, path, loss)
    result_file = tmp_path / "result.json"
    code, output = run(
        lab, collections_path, playbook(tmp_path / "play.yml", task(module, args, result_file)), proxy.port
    )
    assert rule.fired.is_set(), output
    result = json.loads(result_file.read_text())
    assert code == 0 and result.get("failed") is not True, output
    assert result["changed"] is True, result
    value = tag + ".example" if field == "hostname" else tag
    found = live_workloads(lab, value) if collection == "workloads" else named(lab, collection, field, value)
    assert len(found) == 1, found
    if module == "workload_bulk":
        assert result["created"] == [value] and result["summary"]["failed"] == 0
    else:
        assert result[module]["href"] == found[0]["href"]
    if case == "rule_set":
        assert len(lab.api("GET", found[0]["href"].split("/orgs/1/", 1)[1] + "/sec_rules")) == 1


def test_rule_whose_answer_is_lost_is_made_once(lab, proxy, collections_path, tmp_path):
    tag = f"lost-rule-{uuid.uuid4().hex[:8]}"
    rule = {"providers": ["ams"], "consumers": ["ams"], "services": [{"port": 443, "proto": "tcp"}]}
    proxy.lose("POST", r"/sec_rules$")
    result_file = tmp_path / "result.json"
    book = playbook(tmp_path / "play.yml", task("rule_set", {"name": tag, "rules": [rule]}, result_file))
    code, output = run(lab, collections_path, book, proxy.port)
    result = json.loads(result_file.read_text())
    assert code == 0 and result.get("failed") is not True, output
    rule_set = named(lab, "sec_policy/draft/rule_sets", "name", tag)[0]
    rules = lab.api("GET", rule_set["href"].split("/orgs/1/", 1)[1] + "/sec_rules")
    assert len(rules) == 1
    assert [r["href"] for r in result["rule_set"]["rules"]] == [rules[0]["href"]]


@pytest.mark.parametrize("loss", ["drop", 504])
def test_bulk_delete_whose_answer_is_lost_reports_the_deletions(lab, proxy, collections_path, tmp_path, loss):
    tag = f"lost-del-{uuid.uuid4().hex[:8]}"
    items = [{"hostname": f"{tag}-{n}.example"} for n in range(2)]
    code, output = run(
        lab, collections_path, playbook(tmp_path / "make.yml", task("workload_bulk", {"workloads": items}))
    )
    assert code == 0, output
    proxy.lose("PUT", r"/workloads/bulk_delete$", loss)
    result_file = tmp_path / "result.json"
    book = playbook(
        tmp_path / "delete.yml", task("workload_bulk", {"workloads": items, "state": "absent"}, result_file)
    )
    code, output = run(lab, collections_path, book, proxy.port)
    result = json.loads(result_file.read_text())
    assert code == 0 and result.get("failed") is not True, output
    assert result["changed"] is True
    assert sorted(result["deleted"]) == sorted(item["hostname"] for item in items)
    assert result["summary"]["failed"] == 0
    assert not any(live_workloads(lab, item["hostname"]) for item in items)


def test_rule_set_whose_rule_fails_reports_what_it_created(lab, proxy, collections_path, tmp_path):
    tag = f"half-{uuid.uuid4().hex[:8]}"
    rule = {"providers": ["ams"], "consumers": ["ams"], "services": [{"port": 443, "proto": "tcp"}]}
    proxy.lose("POST", r"/sec_rules$", 500, times=100)
    result_file = tmp_path / "result.json"
    book = playbook(tmp_path / "play.yml", task("rule_set", {"name": tag, "rules": [rule]}, result_file))
    run(lab, collections_path, book, proxy.port)
    result = json.loads(result_file.read_text())
    rule_set = named(lab, "sec_policy/draft/rule_sets", "name", tag)[0]
    assert result["failed"] is True
    assert result["changed"] is True
    assert rule_set["href"] in result["msg"]
    assert result["changed_hrefs"][0] == rule_set["href"]


# --- concurrent runs ---------------------------------------------------------------------------------------------
FORKS = 25


def run_twice_at_once(
    lab, collections_path, folder: Path, task_text: str, hosts: int = 1, port: int | None = None
) -> list[tuple[int, str]]:
    """Run the same play twice at once, so that both runs reach the module task at the same moment.

    The play runs on `hosts` inventory hosts (all local, FORKS at a time), as a play that manages one object per
    host does. Each run first says it is ready and waits; once both are, the test lets them go together.
    """
    inventory = folder / "hosts.ini"
    inventory.write_text(
        "".join(f"h{n} ansible_connection=local ansible_python_interpreter={sys.executable}\n" for n in range(hosts))
    )
    go = folder / "go"
    wait_for_go = f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.005)\n"
    barrier = (
        "    - ansible.builtin.copy:\n"
        "        content: ready\n"
        f"        dest: '{folder}/ready-{{{{ run }}}}'\n"
        "        mode: '0600'\n"
        "      run_once: true\n"
        # wait_for polls once a second, which would let the runs go up to a second apart: poll every 5 ms.
        "    - ansible.builtin.command:\n"
        "        argv:\n"
        f"          - {sys.executable}\n"
        "          - -c\n"
        f"          - {json.dumps(wait_for_go)}\n"
        "      changed_when: false\n"
        "      run_once: true\n"
        "      timeout: 300\n"
    )
    book = folder / "play.yml"
    book.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{barrier}{task_text}")
    processes = [
        start(lab, collections_path, book, port, extra=["-i", str(inventory), "-f", str(FORKS), "-e", f"run={run}"])
        for run in (1, 2)
    ]
    deadline = time.monotonic() + 300
    while not all((folder / f"ready-{run}").exists() for run in (1, 2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "the runs never got ready"
        time.sleep(0.05)
    go.write_text("go")
    return [(process.wait(timeout=900), process.stdout.read()) for process in processes]


CONCURRENT = {
    # case: (module, its arguments for host h<n>, collection, identifying field, the value for host h<n>)
    "label": ("label", {"key": "app", "value": "{tag}-{{{{ inventory_hostname }}}}"}, "labels", "value", "{tag}-h{n}"),
    "workload": (
        "workload",
        {"hostname": "{tag}-{{{{ inventory_hostname }}}}.example", "labels": {"app": "{tag}-0"}},
        "workloads",
        "hostname",
        "{tag}-h{n}.example",
    ),
    "ip_list": (
        "ip_list",
        {"name": "{tag}-{{{{ inventory_hostname }}}}", "ip_ranges": ["10.9.0.0/16"]},
        "sec_policy/draft/ip_lists",
        "name",
        "{tag}-h{n}",
    ),
}


@pytest.mark.parametrize("case", sorted(CONCURRENT))
def test_two_concurrent_runs_over_many_hosts_converge_to_one_runs_state(lab, collections_path, tmp_path, case):
    """Each of COUNT hosts manages its own object (a label, a workload, an IP list named after it), twice at once."""
    module, args, collection, field, pattern = CONCURRENT[case]
    tag = f"race-{case.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    values = [pattern.format(tag=tag, n=n) for n in range(COUNT)]
    if case == "workload":
        lab.api("POST", "labels", {"key": "app", "value": f"{tag}-0"})
    args = json.loads(json.dumps(args).replace("{tag}", tag).replace("{{{{", "{{").replace("}}}}", "}}"))
    outcomes = run_twice_at_once(lab, collections_path, tmp_path, task(module, args), hosts=COUNT)
    everything = [doc for doc in lab.api("GET", f"{collection}?max_results=5000") if not doc.get("deleted")]
    mine = [doc[field] for doc in everything if str(doc.get(field) or "").startswith(tag)]
    report(case, mine, outcomes)
    assert [code for code, _output in outcomes] == [0, 0], "\n".join(output[-3000:] for _code, output in outcomes)
    assert sorted(mine) == sorted(values)


def report(case: str, found: list, outcomes: list[tuple[int, str]]) -> None:
    """Print what two concurrent runs left (shown with pytest -rA): the figures of docs/retries.md."""
    failed = sum(output.count("fatal: [") + output.count("failed: [") for _code, output in outcomes)
    codes = [code for code, _output in outcomes]
    print(f"\n{case}: {len(found)} objects after two concurrent runs of {COUNT}; exit codes {codes}; {failed} failed")


def test_two_concurrent_bulk_runs_make_each_workload_once(lab, proxy, collections_path, tmp_path):
    """Both runs plan while neither has created anything yet: the proxy holds each bulk_create for a second (a slow
    PCE), so that both creates go out before either is stored."""
    tag = f"race-bulk-{uuid.uuid4().hex[:8]}"
    items = [{"hostname": f"{tag}-{n}.example", "os_type": "linux"} for n in range(COUNT)]
    proxy.slow("PUT", r"/workloads/bulk_create$", 1.0, times=2)
    outcomes = run_twice_at_once(
        lab, collections_path, tmp_path, task("workload_bulk", {"workloads": items}), port=proxy.port
    )
    everything = lab.api("GET", "workloads?max_results=5000")
    mine = [
        doc["hostname"] for doc in everything if (doc.get("hostname") or "").startswith(tag) and not doc.get("deleted")
    ]
    report("workload_bulk", mine, outcomes)
    assert [code for code, _output in outcomes] == [0, 0], "\n".join(output[-3000:] for _code, output in outcomes)
    assert sorted(mine) == sorted(item["hostname"] for item in items)
