"""flow_collect's nft_sets source spools every flow exactly once, wherever a run stops (issue 17, finding 7).

The fake nft (tests/unit/fake_nft.py) counts connections into the filling generation like the table's rules
do. A run is killed after its k-th side effect - an `nft -f` script applied, a file written atomically, a
spool file renamed into place - for every k of a whole run; then traffic goes on, the next runs are normal, and
the spooled counts must be exactly the connections made: none lost, none twice. The same for a spool that
cannot be written, for the table being replaced or made without flow recording in between (the firewall role
collects before it applies), and for two collectors at once.
"""

from __future__ import annotations

import collections
import errno
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.flows import nft_sets, writers
from ansible_collections.microseg.illumio.plugins.modules import flow_collect
from fake_nft import FakeNft
from module_runner import run_module

T1 = (
    ("allow", "10.0.0.9", "10.0.0.1", "tcp", 5432, 3),
    ("drop", "10.0.0.9", "10.0.0.1", "tcp", 23, 2),
    ("allow", "fd00::9", "fd00::1", "tcp", 5432, 1),
)
T2 = (("allow", "10.0.0.9", "10.0.0.1", "tcp", 5432, 1), ("drop", "10.0.0.8", "10.0.0.1", "udp", 161, 1))
T3 = (("allow", "10.0.0.7", "10.0.0.1", "tcp", 80, 2),)
PROTO = {"tcp": 6, "udp": 17}
STEPS = 8  # more than a whole run has side effects: the last k do not crash at all


class Killed(BaseException):
    """The module process killed (nothing after this point of the run happens)."""


def expected(*traffic):
    counts = collections.Counter()
    for batch in traffic:
        for _decision, src, dst, proto, port, connections in batch:
            counts[(src, dst, port, PROTO[proto])] += connections
    return dict(counts)


class Lab:
    def __init__(self, tmp_path, nft):
        self.nft = nft
        self.spool = tmp_path / "spool"
        self.state = tmp_path / "state" / "state.json"
        self.ven = tmp_path / "no_ven"

    def traffic(self, batch):
        for decision, src, dst, proto, port, connections in batch:
            self.nft.traffic(decision, src, dst, proto, port, connections)

    def collect(self, **options):
        args = {"sources": ["nft_sets"], "spool_dir": str(self.spool), "state_file": str(self.state)}
        args["ven_data_dir"] = str(self.ven)
        args.update(options)
        return run_module(flow_collect.main, args)

    def spooled(self):
        """Connections per (src, dst, port, proto) in the spool files the upload would send."""
        counts = collections.Counter()
        for path in sorted(self.spool.glob("flows-*.csv")):
            for line in path.read_text().splitlines():
                src, dst, port, proto, count = line.split(",")[:5]
                counts[(src, dst, int(port), int(proto))] += int(count)
        return dict(counts)

    def set_elements(self):
        return sum(len(elements) for elements in self.nft.sets.values())


class Crash:
    """Counts the run's side effects and raises Killed right after the k-th one (0: never)."""

    def __init__(self, monkeypatch, nft):
        self.at = 0
        self.seen = []
        self.inside_write = False
        real_write, real_rename = writers.write_atomic, os.rename

        def write_atomic(path, text, mode=0o600):
            self.inside_write = True
            try:
                real_write(path, text, mode)
            finally:
                self.inside_write = False
            self.happened("write " + os.path.basename(path))

        def rename(source, destination):
            real_rename(source, destination)
            if not self.inside_write:
                self.happened("rename " + os.path.basename(str(destination)))

        monkeypatch.setattr(writers, "write_atomic", write_atomic)
        monkeypatch.setattr(os, "rename", rename)
        nft.after_write = lambda script: self.happened("nft " + script.split("\n")[0])

    def happened(self, what):
        self.seen.append(what)
        if self.at and len(self.seen) == self.at:
            self.at = 0
            raise Killed(what)

    def run(self, lab, at, **options):
        """One run killed after its `at`-th side effect; the step it was killed after, or None if it finished."""
        self.at, self.seen = at, []
        try:
            result = lab.collect(**options)
        except Killed as killed:
            return str(killed)
        self.at = 0
        assert not result.get("failed"), result
        return None


@pytest.fixture
def nft(monkeypatch):
    fake = FakeNft()
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name
    )
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, data=None, binary_data=False: fake(argv, data))
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: None)
    monkeypatch.setattr(nft_sets, "SETTLE_SECONDS", 0)
    return fake


@pytest.fixture
def lab(tmp_path, nft):
    return Lab(tmp_path, nft)


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_a_run_killed_after_any_step_loses_and_repeats_nothing(lab, nft, monkeypatch, step):
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    killed_after = crash.run(lab, step)
    lab.traffic(T2)
    lab.collect()
    # The next normal run collects everything: what the killed run had read and what came since.
    assert lab.spooled() == expected(T1, T2), f"killed after {killed_after!r} ({crash.seen})"
    lab.traffic(T3)
    lab.collect()
    lab.collect()
    assert lab.spooled() == expected(T1, T2, T3), f"killed after {killed_after!r}"
    assert lab.set_elements() == 0


def test_killed_after_spooling_before_emptying_counts_once(lab, nft, monkeypatch):
    """The issue's case: spooled, then killed before the sets were emptied; the old collector counted them twice."""
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    # Kill the first run at the first step after which its spool file is in place and its sets still hold.
    for step in range(1, STEPS + 1):
        killed_after = crash.run(lab, step)
        if any(lab.spool.glob("flows-*.csv")) and lab.set_elements():
            break
        for path in lab.spool.glob("*"):  # not there yet: the same flows again, from the start
            path.unlink()
        lab.state.unlink(missing_ok=True)
        nft.replace_table()
        lab.traffic(T1)
    assert killed_after is not None
    crash.at = 0
    lab.traffic(T2)
    lab.collect()
    lab.traffic(T3)
    lab.collect()
    lab.collect()
    assert lab.spooled() == expected(T1, T2, T3), f"killed after {killed_after!r}"


def read_only_spool(monkeypatch, lab):
    real = writers.write_atomic

    def write_atomic(path, text, mode=0o600):
        if os.path.dirname(os.path.abspath(path)) == str(lab.spool):
            raise OSError(errno.EROFS, "Read-only file system", path)
        return real(path, text, mode)

    monkeypatch.setattr(writers, "write_atomic", write_atomic)


def test_a_read_only_spool_fails_the_run_and_the_next_run_collects_everything(lab, nft, monkeypatch):
    lab.traffic(T1)
    with monkeypatch.context() as patch:
        read_only_spool(patch, lab)
        failed = lab.collect()
    assert failed.get("failed") is True and "Read-only file system" in failed["msg"]
    assert lab.spooled() == {}
    lab.traffic(T2)
    lab.collect()
    assert lab.spooled() == expected(T1, T2)
    lab.traffic(T3)
    lab.collect()
    lab.collect()
    assert lab.spooled() == expected(T1, T2, T3)


def test_enforcing_again_after_a_killed_run_loses_nothing(lab, nft, monkeypatch):
    """The firewall role spools before firewall_apply replaces the table (which empties every set)."""
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    assert crash.run(lab, 1).startswith("nft flush map")  # killed right after switching generations
    lab.traffic(T2)
    lab.collect()  # the role's pre-apply spool (roles/firewall/tasks/apply.yml)
    nft.replace_table()
    lab.traffic(T3)
    lab.collect()
    assert lab.spooled() == expected(T1, T2, T3)


@pytest.mark.parametrize("how", ["without record_flows", "absent or idle"])
def test_turning_recording_off_collects_both_generations_first(lab, nft, monkeypatch, how):
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    assert crash.run(lab, 1).startswith("nft flush map")
    lab.traffic(T2)
    lab.collect()  # the role's spool before it applies a ruleset without flow sets, or removes the table
    if how == "absent or idle":
        nft.remove_table()
    else:
        nft.replace_table(records=False)
    again = lab.collect()
    assert not again.get("failed") and again["flows"] == 0
    assert lab.spooled() == expected(T1, T2)


def test_a_recorded_generation_of_a_replaced_table_is_not_emptied(lab, nft, monkeypatch):
    """Killed after recording its spool files: when the table was made again before the next run, the generation
    that run would have emptied is a new one, filling with flows nobody read yet - it must stay."""
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    assert crash.run(lab, 3) == "write state.json"  # switched, staged, recorded; not published, not emptied
    nft.replace_table()  # maps back at generation a, which the record names
    lab.traffic(T2)
    result = lab.collect()
    assert result["resumed"]["spool_files"] and result["resumed"]["flushed"] is None
    assert lab.spooled() == expected(T1, T2)


def test_resumed_says_what_an_interrupted_run_left(lab, nft, monkeypatch):
    crash = Crash(monkeypatch, nft)
    lab.traffic(T1)
    assert crash.run(lab, 2).startswith("write .staged-flows-")  # staged, never recorded
    result = lab.collect()
    assert result["changed"] is True
    assert result["resumed"]["discarded_files"] and result["resumed"]["unread_flows"] == 3
    assert result["flows"] == 3 and result["connections"] == 6
    assert lab.spooled() == expected(T1)
    assert crash.run(lab, 0) is None
    quiet = lab.collect()
    assert quiet["changed"] is False and quiet["resumed"] == {
        "spool_files": [],
        "flushed": None,
        "discarded_files": [],
        "unread_flows": 0,
    }


def test_a_second_collector_waits_for_the_first_then_fails_honestly(lab, nft, monkeypatch):
    lab.traffic(T1)
    lab.collect()
    lab.traffic(T2)
    monkeypatch.setattr(flow_collect, "LOCK_WAIT_SECONDS", 0.3)
    other = flow_collect.StateLock(str(lab.state))
    assert other.acquire()
    try:
        busy = lab.collect()
    finally:
        other.release()
    assert busy["failed"] is True and "another flow_collect" in busy["msg"]
    assert nft.filling == "b"  # nothing switched by the run that did not get the lock
    lab.collect()
    assert lab.spooled() == expected(T1, T2)


def test_no_table_and_no_state_writes_nothing_and_says_nothing_without_warn_missing(tmp_path, nft, monkeypatch):
    warnings = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: warnings.append(warning))
    nft.remove_table()
    lab = Lab(tmp_path, nft)
    result = lab.collect(warn_missing=False)
    assert result["changed"] is False and warnings == []
    assert not lab.state.parent.exists() and not lab.spool.exists()
    lab.collect()
    assert warnings == ["nft_sets: the table inet illumio does not exist (yet); nothing read"]
