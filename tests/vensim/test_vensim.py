"""The VEN stand-in on real test hosts, paired with a lab PCE through the lab's pairing script.

Needs root (hostlab). Its own hostlab (state dir, bridge, subnet) and its own lab PCE listening on that lab's
bridge address, so it never touches a developer's lab. The tests run in file order and build on each other:
pair, look, suspend, record flows, upgrade, reactivate with options, install with environment variables,
unpair from the host and from the PCE.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOSTLAB = REPO / "tests" / "hostlab" / "hostlab.py"
sys.path.insert(0, str(HERE))

import vensimlab  # noqa: E402

build = vensimlab.vensim_build

NEEDED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh", "dpkg-deb", "nft")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root: network namespaces, mounts, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]

HOSTS = ("vs1", "vs2", "vs3")
CTL = "/opt/illumio_ven/illumio-ven-ctl"
DATA = "/opt/illumio_ven_data"
OLD, NEW = build.DEFAULT_VERSIONS
# Short stand-in intervals so PCE-side actions (upgrade, unpair) are noticed within a second or two.
FAST = "VENSIM_HEARTBEAT_SECONDS=1 VENSIM_FLOW_POLL_SECONDS=0.5"
LISTEN_PORT = 18443


@dataclass(frozen=True)
class Lab:
    state_dir: Path
    bridge: str
    subnet: str
    pce_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOSTLAB_STATE_DIR": str(self.state_dir),
            "HOSTLAB_BRIDGE": self.bridge,
            "HOSTLAB_SUBNET": self.subnet,
        }

    @property
    def bridge_ip(self) -> str:
        return self.subnet.rsplit(".", 1)[0] + ".1"


LAB = Lab(Path("/var/tmp/hostlab-pytest-vensim"), "hltest2", "10.213.250.0/24", Path("/var/tmp/vensim-pytest-pce"))


def hostlab(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(HOSTLAB), *args], env=LAB.env, capture_output=True, text=True, timeout=90, check=False
    )
    assert proc.returncode == 0, f"hostlab {' '.join(args)}: {proc.stderr}"
    return proc


def ssh(host: str, command: str, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["ssh", "-F", str(LAB.state_dir / "ssh_config"), host, command],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        check=False,
    )
    proc = subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )
    if check:
        assert proc.returncode == 0, f"{host}: {command!r} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def pairing_one_liner(pce: vensimlab.LabPce, profile_id: int, code: str, extra: str = "") -> str:
    """The documented Linux pairing command, with the lab CA (copied to /tmp/lab-ca.pem) for curl."""
    server = pce.management_server
    url = f"https://{server}/api/v18/software/ven/image?pair_script=pair.sh&profile_id={profile_id}"
    return (
        f"rm -fr {DATA}/tmp && umask 026 && mkdir -p {DATA}/tmp && "
        f"curl -sS --cacert /tmp/lab-ca.pem --tlsv1.2 {shlex.quote(url)} -o {DATA}/tmp/pair.sh && "
        f"chmod +x {DATA}/tmp/pair.sh && "
        f"{extra} {DATA}/tmp/pair.sh --management-server {server} --activation-code {code}"
    )


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("-"))


def ven_of(pce: vensimlab.LabPce, host: str) -> dict | None:
    status, vens = pce.api("GET", f"/vens?hostname={host}")
    assert status == 200
    found = [v for v in vens if v.get("hostname") == host]
    return found[0] if found else None


# --- fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pce():
    subprocess.run(
        [sys.executable, str(HOSTLAB), "down", "--all", *HOSTS], env=LAB.env, capture_output=True, check=False
    )
    vensimlab.stop(LAB.pce_dir, remove=True)
    try:
        started = time.monotonic()
        hostlab("up", *HOSTS)
        lab = vensimlab.start(LAB.pce_dir, f"{LAB.bridge_ip}:{LISTEN_PORT}")
        ca = Path(lab.info["ca"]).read_bytes()
        for host in HOSTS:
            ssh(host, "cat > /tmp/lab-ca.pem", stdin=ca)
        assert time.monotonic() - started < 60
        yield lab
    finally:
        vensimlab.stop(LAB.pce_dir, remove=True)
        subprocess.run([sys.executable, str(HOSTLAB), "down", "--all"], env=LAB.env, capture_output=True, check=False)
        assert not LAB.state_dir.exists()


@pytest.fixture(scope="module")
def open_profile(pce):
    """A pairing profile whose enforcement mode and visibility level the activate command line may set."""
    return {
        "enforcement_mode_lock": False,
        "mode_lock": False,
        "visibility_level_lock": False,
        "log_traffic_lock": False,
    }


# --- pairing ----------------------------------------------------------------------------------------------------------


def test_pairing_script_installs_and_pairs_the_workload(pce):
    key = pce.pairing_key("vensim-pytest")
    started = time.monotonic()
    paired = ssh("vs1", pairing_one_liner(pce, key["profile_id"], key["activation_code"], FAST))
    assert time.monotonic() - started < 30
    assert f"Retrieving Illumio Packages: VEN {OLD}" in paired.stdout
    assert "VEN has been SUCCESSFULLY paired with Illumio" in paired.stdout
    assert "Workload has been SUCCESSFULLY paired with Illumio" in paired.stdout
    assert key["activation_code"] not in ssh("vs1", "cat /var/log/illumio_install.log").stdout
    workloads = pce.workloads("vs1")
    assert len(workloads) == 1
    workload = workloads[0]
    assert workload["ven"]["href"]
    assert workload["online"] is True
    assert workload["agent"]["status"]["status"] == "active"
    assert workload["agent"]["status"]["agent_version"] == OLD
    assert workload["enforcement_mode"] == "visibility_only"
    addresses = {i["address"] for i in workload["interfaces"]}
    assert LAB.subnet.rsplit(".", 1)[0] + ".11" in addresses
    status, managed = pce.api("GET", "/workloads?managed=true&online=true")
    assert status == 200
    assert workload["href"] in {w["href"] for w in managed}


def test_status_shows_the_paired_ven(pce):
    shown = ssh("vs1", f"{CTL} status")
    assert shown.stdout.startswith("Illumio VEN is running\n")
    for component in ("venAgentMgr", "venPlatformHandler", "venVtapServer", "venAgentMonitor"):
        assert f"- {component} (pid " in shown.stdout
    fields = status_fields(shown.stdout)
    assert fields["VEN Version"] == OLD
    assert fields["Activation"] == "activated"
    assert fields["VEN Connectivity"] == "Connected"
    assert fields["Agent State"] == "illuminated"
    assert fields["Enforcement Mode"] == "visibility_only"
    assert fields["Workload"] == pce.workloads("vs1")[0]["href"]
    assert ssh("vs1", f"{CTL} version").stdout == f"{OLD}\n"


def test_installation_layout_and_ownership(pce):
    listing = ssh(
        "vs1",
        f"stat -c '%n %U:%G %a' /opt/illumio_ven {DATA} {DATA}/etc {DATA}/etc/agent_token; "
        "getent passwd ilo-ven; cat /etc/cron.d/illumio-ven-monitor; dpkg-query -W illumio-ven",
    ).stdout.splitlines()
    assert listing[:4] == [
        "/opt/illumio_ven root:ilo-ven 750",
        f"{DATA} ilo-ven:ilo-ven 750",
        f"{DATA}/etc ilo-ven:ilo-ven 750",
        f"{DATA}/etc/agent_token root:root 600",
    ]
    assert listing[4].startswith("ilo-ven:x:")
    assert any(line.endswith(f"root {CTL} _monitor") for line in listing)
    assert listing[-1] == f"illumio-ven\t{OLD}"
    assert "table inet illumio_vensim" in ssh("vs1", "nft list tables").stdout  # conntrack on, for flow logs


def test_state_survives_restart(pce):
    before = status_fields(ssh("vs1", f"{CTL} status").stdout)["Workload"]
    restarted = ssh("vs1", f"{CTL} restart")
    assert "Shutting down illumio-control:" in restarted.stdout
    assert "Starting illumio-control:" in restarted.stdout
    ssh("vs1", f"{CTL} stop")
    assert ssh("vs1", f"{CTL} status", check=False).returncode == 3
    ssh("vs1", f"{CTL} start")
    after = status_fields(ssh("vs1", f"{CTL} status").stdout)
    assert after["Workload"] == before
    assert after["Activation"] == "activated"


def test_suspend_and_unsuspend_are_reported_to_the_pce(pce):
    suspended = ssh("vs1", f"{CTL} suspend")
    assert suspended.stdout == "Suspending the VEN\nThe VEN has been suspended. PCE was notified.\n"
    assert ven_of(pce, "vs1")["status"] == "suspended"
    shown = ssh("vs1", f"{CTL} status", check=False)
    assert shown.returncode == 3
    assert "Illumio VEN is suspended" in shown.stdout
    assert status_fields(shown.stdout)["Agent State"] == "suspended"
    assert ssh("vs1", f"{CTL} start", check=False).returncode == 1
    unsuspended = ssh("vs1", f"{CTL} unsuspend")
    assert unsuspended.stdout == "Unsuspending the VEN\nThe VEN has been unsuspended. PCE was notified.\n"
    assert ven_of(pce, "vs1")["status"] == "active"
    assert status_fields(ssh("vs1", f"{CTL} status").stdout)["Agent State"] == "illuminated"


# --- flows ----------------------------------------------------------------------------------------------------------


def test_connections_between_hosts_are_recorded_as_flows(pce):
    key = pce.pairing_key("vensim-pytest")
    # vs2 runs the VEN under an existing user of its own (VEN_NONPRIV_USER), passed through the pairing script.
    ssh("vs2", "useradd --system --user-group --no-create-home svcven")
    ssh("vs2", pairing_one_liner(pce, key["profile_id"], key["activation_code"], f"{FAST} VEN_NONPRIV_USER=svcven"))
    assert ssh("vs2", f"stat -c '%U:%G' {DATA}").stdout.strip() == "svcven:svcven"
    vs1, vs2 = (LAB.subnet.rsplit(".", 1)[0] + suffix for suffix in (".11", ".12"))
    port = 17001
    server = (
        "import socket\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen(); c, _ = s.accept(); c.recv(64); c.sendall(b'x' * 1000); c.close()\n"
    )
    ssh("vs2", f"setsid python3 -c {shlex.quote(server)} </dev/null >/dev/null 2>&1 &")
    client = (
        "import socket, time\n"
        "for attempt in range(50):\n"
        "    try:\n"
        f"        c = socket.create_connection(('{vs2}', {port}), timeout=2); break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "c.sendall(b'hello'); n = len(c.recv(4096)); c.close(); print(n)\n"
    )
    assert ssh("vs1", f"python3 -c {shlex.quote(client)}").stdout.strip() == "1000"

    def logged(host: str, direction: str) -> list[str]:
        text = ssh(host, f"cat {DATA}/log/vtapflow.log", check=False).stdout
        return [
            line for line in text.splitlines() if " 6 " in line and f" {port} " in line and f" {direction} " in line
        ]

    outbound = wait_for(lambda: logged("vs1", "O"), what="the flow in vs1's vtapflow.log")[0].split()
    assert outbound[1:10] == ["eth0", "0", "0", "4", vs1, vs2, "6", outbound[8], str(port)]
    assert outbound[11] == "C"
    assert outbound[14] == f"SWID={pce.workloads('vs1')[0]['href'].rsplit('/', 1)[1]}"
    assert outbound[15] == "TBI=" + outbound[15].split("=")[1] and int(outbound[15].split("=")[1]) > 1000
    inbound = wait_for(lambda: logged("vs2", "I"), what="the flow in vs2's vtapflow.log")[0].split()
    assert inbound[5:7] == [vs1, vs2]
    query = f"select src_ip, dst_ip, dst_port, proto, direction, state from flow_view where dst_port = {port}"  # noqa: S608
    rows = ssh("vs1", f"sqlite3 {DATA}/log/flow.db {shlex.quote(query)}").stdout.split()
    assert rows == [f"{vs1}|{vs2}|{port}|6|O|C"]
    summary = f"select src_ip, dst_ip, dst_port, proto, num_connections from flow_view where dst_port = {port}"  # noqa: S608
    assert ssh("vs2", f"sqlite3 {DATA}/log/flowsum.db {shlex.quote(summary)}").stdout.split() == [
        f"{vs1}|{vs2}|{port}|6|1"
    ]
    drops = ssh("vs1", f"sqlite3 {DATA}/log/flow.db 'select count(*) from drop_flow_view'")  # noqa: S608
    assert drops.stdout.strip() == "0"


# --- upgrades ---------------------------------------------------------------------------------------------------------


def test_dpkg_upgrade_keeps_data_user_and_activation(pce):
    workload = pce.workloads("vs1")[0]["href"]
    package = next(build.DEFAULT_OUT.glob(f"illumio-ven-{NEW}.deb12.*.deb"))
    ssh("vs1", "cat > /tmp/new.deb", stdin=package.read_bytes())
    upgraded = ssh("vs1", "dpkg -i /tmp/new.deb")
    assert f"Illumio VEN upgraded from {OLD} to {NEW}" in upgraded.stdout
    fields = status_fields(ssh("vs1", f"{CTL} status").stdout)
    assert fields["VEN Version"] == NEW
    assert fields["Activation"] == "activated"
    assert fields["Workload"] == workload
    assert ssh("vs1", f"stat -c '%U:%G' {DATA}").stdout.strip() == "ilo-ven:ilo-ven"
    assert ssh("vs1", f"test -s {DATA}/log/flow.db && echo kept").stdout.strip() == "kept"
    wait_for(lambda: (ven_of(pce, "vs1") or {}).get("version") == NEW, what="the PCE to see the new version")


def test_upgrade_requested_by_the_pce(pce):
    ven = ven_of(pce, "vs2")
    assert ven["version"] == OLD
    status, answer = pce.api("PUT", "/vens/upgrade", {"vens": [{"href": ven["href"]}], "release": NEW})
    assert status == 200
    assert answer["errors"] == []
    wait_for(lambda: ssh("vs2", f"{CTL} version", check=False).stdout == f"{NEW}\n", what="vs2 to upgrade itself")
    wait_for(lambda: (ven_of(pce, "vs2") or {}).get("version") == NEW, what="the PCE to see vs2's new version")
    assert ssh("vs2", f"stat -c '%U:%G' {DATA}").stdout.strip() == "svcven:svcven"  # VEN_NONPRIV_USER kept


# --- deactivate and activate with options -----------------------------------------------------------------------------


def test_deactivate_then_activate_with_options(pce, open_profile):
    deactivated = ssh("vs1", f"{CTL} deactivate")
    assert "The VEN has been deactivated. PCE was notified." in deactivated.stdout
    assert pce.workloads("vs1") == []
    assert ssh("vs1", "dpkg-query -W -f '${Status}' illumio-ven").stdout == "install ok installed"
    assert status_fields(ssh("vs1", f"{CTL} status", check=False).stdout)["Activation"] == "not activated"
    locked = pce.pairing_key("vensim-pytest")
    refused = ssh(
        "vs1",
        f"PCELAB_CA_FILE=/tmp/lab-ca.pem {CTL} activate -m {pce.management_server} "
        f"-a {locked['activation_code']} --mode idle",
        check=False,
    )
    assert refused.returncode == 1
    assert "enforcement_mode_locked" in refused.stdout
    assert "Workload has FAILED pairing with Illumio" in refused.stdout
    key = pce.pairing_key("vensim-pytest-open", **open_profile)
    activated = ssh(
        "vs1",
        f"{CTL} activate --management-server {pce.management_server} --activation-code {key['activation_code']} "
        "--name 'Web Server 1' --enforcement_mode idle --visibility-level flow_off --log-traffic false",
    )
    assert "VEN has been SUCCESSFULLY paired with Illumio" in activated.stdout
    workload = pce.workloads("vs1")[0]
    assert workload["name"] == "Web Server 1"
    assert workload["enforcement_mode"] == "idle"
    assert workload["visibility_level"] == "flow_off"
    assert status_fields(ssh("vs1", f"{CTL} status").stdout)["Agent State"] == "idle"


# --- install environment variables, prepare ---------------------------------------------------------------------------


def test_install_environment_variables_and_prepare(pce):
    key = pce.pairing_key("vensim-pytest")
    package = next(build.DEFAULT_OUT.glob(f"illumio-ven-{OLD}.deb12.*.deb"))
    ssh("vs3", "cat > /tmp/old.deb", stdin=package.read_bytes())
    env = (
        "VEN_DATA_DIR=/opt/vdata VEN_NONPRIV_UID=4242 VEN_NONPRIV_GID=4243 VEN_INSTALL_ACTION=prepare "
        f"VEN_MANAGEMENT_SERVER={pce.management_server} VEN_ACTIVATION_CODE={key['activation_code']} "
        "VEN_PROXY_SERVER=http://proxy.invalid:3128 VEN_DISABLE_MONITOR_RESTART=true PCELAB_CA_FILE=/tmp/lab-ca.pem"
    )
    installed = ssh("vs3", f"{env} {FAST} dpkg -i /tmp/old.deb")
    assert "prepared" in installed.stdout
    facts = ssh(
        "vs3",
        "getent passwd ilo-ven | cut -d: -f3,4; getent group ilo-ven | cut -d: -f3; "
        "stat -c '%U:%G %a' /opt/vdata /opt/vdata/etc/agent_activation.cfg; "
        "test -e /etc/cron.d/illumio-ven-monitor && echo cron || echo no-cron; "
        f"test -e {DATA} && echo default-data || echo no-default-data",
    ).stdout.split("\n")
    assert facts[:6] == ["4242:4243", "4243", "root:ilo-ven 750", "root:ilo-ven 640", "no-cron", "no-default-data"]
    cfg = ssh("vs3", "cat /opt/vdata/etc/agent_activation.cfg").stdout
    assert cfg == f"activation_code: {key['activation_code']}\nmasterconfig_server: {pce.management_server}\n"
    shown = ssh("vs3", f"{CTL} status", check=False)
    assert shown.returncode == 3
    assert status_fields(shown.stdout)["Activation"] == "prepared"
    assert ssh("vs3", f"{CTL} show-proxy").stdout == "proxy_server: http://proxy.invalid:3128\n"
    ssh("vs3", f"{CTL} reset-proxy")
    started = ssh("vs3", f"{CTL} start")  # a prepared VEN activates when it starts (the golden-image boot)
    assert "VEN has been SUCCESSFULLY paired with Illumio" in started.stdout
    assert pce.workloads("vs3")[0]["online"] is True
    assert ssh("vs3", "test -e /opt/vdata/etc/agent_activation.cfg || echo gone").stdout.strip() == "gone"
    assert ssh("vs3", "stat -c '%U:%G' /opt/vdata").stdout.strip() == "ilo-ven:ilo-ven"


# --- unpair -----------------------------------------------------------------------------------------------------------


def test_unpair_from_the_host_removes_the_workload_and_the_ven(pce):
    unpaired = ssh("vs1", f"{CTL} unpair saved")
    assert "The VEN has been unpaired and uninstalled. PCE was notified." in unpaired.stdout
    assert pce.workloads("vs1") == []
    assert ven_of(pce, "vs1") is None
    assert "removed" in ssh("vs1", "dpkg-query -W illumio-ven >/dev/null 2>&1 || echo removed").stdout
    assert not {"illumio_ven", "illumio_ven_data"} & set(ssh("vs1", "ls /opt").stdout.split())
    assert "unpair: firewall_restore=saved (saved)" in ssh("vs1", "cat /var/log/illumio.log").stdout
    assert "illumio_vensim" not in ssh("vs1", "nft list tables").stdout  # the stand-in's conntrack table went too


def test_unpair_requested_by_the_pce(pce):
    ven = ven_of(pce, "vs2")
    status, answer = pce.api("PUT", "/vens/unpair", {"vens": [{"href": ven["href"]}], "firewall_restore": "default"})
    assert status == 200
    assert answer["errors"] == []
    assert pce.workloads("vs2") == []
    wait_for(
        lambda: "removed" in ssh("vs2", "dpkg-query -W illumio-ven >/dev/null 2>&1 || echo removed").stdout,
        what="vs2 to unpair itself",
    )
    assert "unpair: firewall_restore=recommended (default)" in ssh("vs2", "cat /var/log/illumio.log").stdout
    assert ssh("vs2", f"test -e {DATA} && echo left || echo gone").stdout.strip() == "gone"


def test_unpair_with_custom_data_dir(pce):
    ssh("vs3", f"{CTL} unpair open")
    assert pce.workloads("vs3") == []
    assert ssh("vs3", "ls -d /opt/vdata /opt/illumio_ven 2>/dev/null | wc -l").stdout.strip() == "0"


@pytest.mark.skipif(not shutil.which("rpmbuild"), reason="rpmbuild is not installed: no rpm is built")
def test_rpm_installs_upgrades_and_erases(pce):
    """The rpm on a Debian test host (rpm --nodeps: its database knows no python3): same hooks, rpm's order."""
    for version, name in ((OLD, "old"), (NEW, "new")):
        package = next(build.DEFAULT_OUT.glob(f"illumio-ven-{version}.c8.*.rpm"))
        ssh("vs3", f"cat > /tmp/{name}.rpm", stdin=package.read_bytes())
    assert f"Illumio VEN installed: {OLD}" in ssh("vs3", "rpm -i --nodeps /tmp/old.rpm").stdout
    assert ssh("vs3", f"{CTL} status", check=False).stdout.startswith("Illumio VEN is running")
    ssh("vs3", "rpm -Uvh --nodeps /tmp/new.rpm")
    # The old package's %preun runs after the new %post: the new daemon must still be running.
    assert ssh("vs3", f"{CTL} version").stdout == f"{NEW}\n"
    assert ssh("vs3", f"{CTL} status", check=False).returncode == 0
    ssh("vs3", "rpm -e illumio-ven")
    assert ssh("vs3", "test -e /opt/illumio_ven && echo left || echo gone").stdout.strip() == "gone"
