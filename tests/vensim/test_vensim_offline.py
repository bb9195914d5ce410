"""VEN stand-in without hosts or a PCE: packages, bundle manifests, activate option rules, flow-log parsing.

The command line runs in a scratch root (VENSIM_ROOT), so these tests need neither root nor a lab.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import vensim  # noqa: E402
import vensimlab  # noqa: E402

build = vensimlab.vensim_build

CODE = "0123456789abcdef" * 5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is missing (Debian package dpkg)")
    out = tmp_path_factory.mktemp("vensim-build")
    return out, build.build(out)


@pytest.fixture
def scratch(tmp_path):
    """An installed stand-in under a scratch root: the package files plus the record postinst writes."""
    build.stage_files(tmp_path, "23.2.10-100")
    (tmp_path / "opt/illumio_ven/etc/ven_install.cfg").write_text(
        json.dumps({"data_dir": f"{tmp_path}/opt/illumio_ven_data", "user": "ilo-ven", "group": "ilo-ven"})
    )
    for sub in ("etc", "log", "run", "tmp"):
        (tmp_path / "opt/illumio_ven_data" / sub).mkdir(parents=True)
    return tmp_path


def ctl(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VENSIM_ROOT": str(root), "PCELAB_CA_FILE": ""}
    return subprocess.run(
        ["sh", str(root / "opt/illumio_ven/illumio-ven-ctl"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# --- packages and bundles -------------------------------------------------------------------------------------------


def test_packages_are_named_and_described_like_the_ven(built):
    out, releases = built
    assert [r.version for r in releases] == ["23.2.10-100", "23.2.20-200"]
    arch = build.DEB_ARCH.get(build.machine_arch(), build.machine_arch())
    deb = out / f"illumio-ven-23.2.10-100.deb12.{arch}.deb"
    info = subprocess.run(["dpkg-deb", "--field", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: illumio-ven\n" in info
    assert "Version: 23.2.10-100\n" in info
    assert "NOT the Illumio VEN" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./opt/illumio_ven/illumio-ven-ctl", "./opt/illumio_ven/lib/vensim.py"):
        assert path in listing
    scripts = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    for script in ("postinst", "prerm", "postrm"):
        assert script in scripts


def test_bundles_install_into_the_lab_library_format(built):
    releases = built[1]
    for release in releases:
        with tarfile.open(release.bundle) as archive:
            manifest = json.loads(archive.extractfile("manifest.json").read())
            names = set(archive.getnames())
        assert f"{manifest['release']}-{manifest['build']}" == release.version
        for package in manifest["packages"]:
            assert package["file"] in names
            assert package["file"].startswith(f"illumio-ven-{release.version}.")
            assert len(package["sha256"]) == 64
        types = {package["pkg_type"] for package in manifest["packages"]}
        assert types == ({"deb", "rpm"} if shutil.which("rpmbuild") else {"deb"})


@pytest.mark.skipif(not shutil.which("rpmbuild"), reason="rpmbuild is not installed: no rpm is built")
def test_rpm_has_the_same_files_and_scriptlets(built):
    out = built[0]
    rpm = next(out.glob("illumio-ven-23.2.10-100.c8.*.rpm"))
    files = subprocess.run(["rpm", "-qpl", str(rpm)], capture_output=True, text=True, check=True).stdout.split()
    assert "/opt/illumio_ven/illumio-ven-ctl" in files
    scripts = subprocess.run(["rpm", "-qp", "--scripts", str(rpm)], capture_output=True, text=True, check=True).stdout
    assert "_package-hook post" in scripts


# --- activate: options and their combination rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "idle", "--enforcement_mode", "full"], "not both"),
        (["--visibility-level", "flow_off", "--log-traffic", "true"], "invalid combination"),
        (["--visibility-level", "flow_drops", "--mode", "illuminated"], "valid only in the full"),
        (["--visibility_level", "flow_drops", "--enforcement_mode", "visibility_only"], "valid only in the full"),
        (["--mode", "build"], "invalid choice"),
        (["--log-traffic", "yes"], "invalid choice"),
        (["--proxy-server", "https://proxy:3128"], "only the http scheme"),
        (["--management-server", "pce.example.com"], "HOST:PORT"),
        (["--bogus", "1"], "unrecognized arguments"),
    ],
)
def test_activate_refuses_bad_option_combinations(scratch, args, message):
    proc = ctl(scratch, "activate", "--activation-code", CODE, "--management-server", "127.0.0.1:9", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_activate_needs_a_code_and_a_server(scratch):
    missing_code = ctl(scratch, "activate", "--management-server", "127.0.0.1:9")
    assert missing_code.returncode == 2
    assert "--activation-code is required" in missing_code.stderr
    missing_server = ctl(scratch, "activate", "--activation-code", CODE)
    assert missing_server.returncode == 2
    assert "--management-server" in missing_server.stderr


def test_activate_reads_the_code_from_agent_activation_cfg(scratch):
    cfg = scratch / "opt/illumio_ven_data/etc/agent_activation.cfg"
    cfg.write_text(f"activation_code: {CODE}\nmasterconfig_server: 127.0.0.1:9\n")
    proc = ctl(scratch, "activate")
    # Nothing listens on port 9: the code and the server came from the file, and the failure is the VEN's.
    assert proc.returncode == 1
    assert "VEN Configuration retrieval" in proc.stdout
    assert "Workload has FAILED pairing with Illumio" in proc.stdout
    assert "127.0.0.1:9" in proc.stdout


def test_allowed_combinations_reach_the_pce(scratch):
    proc = ctl(
        scratch,
        "activate",
        "-a",
        CODE,
        "-m",
        "127.0.0.1:9",
        "--mode",
        "enforced",
        "--visibility-level",
        "flow_drops",
        "--log-traffic",
        "false",
        "--name",
        "Web Server 1",
    )
    assert proc.returncode == 1
    assert "FAILED pairing" in proc.stdout


def test_option_mapping():
    parser = vensim.build_parser()
    args = parser.parse_args(["activate", "--mode", "illuminated", "--role", "Web", "--log_traffic", "false"])
    assert vensim.activation_options(args) == {
        "enforcement_mode": "visibility_only",
        "log_traffic": False,
        "labels": {"role": "Web"},
    }
    args = parser.parse_args(["activate", "--enforcement-mode", "selective", "--visibility-level", "flow_off"])
    assert vensim.activation_options(args) == {"enforcement_mode": "selective", "visibility_level": "flow_off"}


# --- other commands in a scratch root ---------------------------------------------------------------------------------


def test_proxy_commands_print_the_documented_lines(scratch):
    assert ctl(scratch, "show-proxy").stdout == "No proxy is set\n"
    assert ctl(scratch, "set-proxy", "http://proxy.example.com:3128").stdout == (
        "Updating proxy to http://proxy.example.com:3128. VEN restart needed.\n"
    )
    assert ctl(scratch, "show-proxy").stdout == "proxy_server: http://proxy.example.com:3128\n"
    assert ctl(scratch, "reset-proxy").stdout == "Resetting proxy. VEN restart needed.\n"
    assert ctl(scratch, "show-proxy").stdout == "No proxy is set\n"
    assert ctl(scratch, "set-proxy", "socks5://proxy:1080").returncode == 2


def test_version_status_and_prepare_without_activation(scratch):
    assert ctl(scratch, "version").stdout == "23.2.10-100\n"
    status = ctl(scratch, "status")
    assert status.returncode == 3  # not running
    assert "Illumio VEN is stopped" in status.stdout
    assert "Agent State: unpaired" in status.stdout
    assert ctl(scratch, "prepare", "--management-server", "pce.lab:8443", "--activation-code", CODE).returncode == 0
    cfg = scratch / "opt/illumio_ven_data/etc/agent_activation.cfg"
    assert cfg.read_text() == f"activation_code: {CODE}\nmasterconfig_server: pce.lab:8443\n"
    assert cfg.stat().st_mode & 0o777 == 0o640
    assert "Activation: prepared" in ctl(scratch, "status").stdout
    assert ctl(scratch, "suspend").returncode == 1  # not activated


def test_unpair_usage():
    with pytest.raises(vensim.UsageError):
        vensim.build_parser().parse_args(["unpair", "closed"])
    assert vensim.UNPAIR_MODES == {"recommended": "default", "saved": "saved", "open": "disable"}


# --- conntrack lines and vtapflow.log lines ---------------------------------------------------------------------------


def test_conntrack_lines_are_parsed():
    proc_line = (
        "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.0.12 dst=10.0.0.11 sport=50972 dport=9999 packets=6 bytes=373 "
        "src=10.0.0.11 dst=10.0.0.12 sport=9999 dport=50972 packets=4 bytes=768 [ASSURED] mark=0 zone=0 use=2"
    )
    entry = vensim.parse_conntrack(proc_line)
    assert entry["family"] == 4
    assert entry["proto"] == 6
    assert entry["state"] == "TIME_WAIT"
    assert entry["orig"] == {"src": "10.0.0.12", "dst": "10.0.0.11", "sport": "50972", "dport": "9999"} | {
        "packets": "6",
        "bytes": "373",
    }
    assert entry["reply"]["bytes"] == "768"
    udp = vensim.parse_conntrack(
        "ipv6     10 udp      17 29 src=fd00::1 dst=fd00::2 sport=5353 dport=53 [UNREPLIED] "
        "src=fd00::2 dst=fd00::1 sport=53 dport=5353 mark=0 use=1"
    )
    assert udp["family"] == 6
    assert udp["state"] == ""
    assert vensim.parse_conntrack("garbage") is None


def test_vtapflow_lines_follow_the_documented_layout(tmp_path):
    layout = vensim.Layout({"data_dir": str(tmp_path)})
    (tmp_path / "log").mkdir()
    recorder = vensim.FlowRecorder(layout)
    flow = {
        "detected_at": 1700000000.5,
        "first_seen": 1700000000.0,
        "last_seen": 1700000000.5,
        "interface": "eth0",
        "ip_version": 4,
        "src_ip": "10.0.0.12",
        "dst_ip": "10.0.0.11",
        "proto": 6,
        "src_port": 50972,
        "dst_port": 9999,
        "direction": "I",
        "state": "C",
        "bytes_in": 373,
        "bytes_out": 768,
        "workload_uuid": "3c1b9f96-969a-472e-bbbc-9d1c93751ef9",
    }
    recorder.record([flow])
    line = (tmp_path / "log/vtapflow.log").read_text().strip()
    fields = line.split()
    assert fields[1:] == [
        "eth0",
        "0",
        "0",
        "4",
        "10.0.0.12",
        "10.0.0.11",
        "6",
        "50972",
        "9999",
        "500",
        "C",
        "0",
        "I",
        "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9",
        "TBI=373",
        "TB0=768",
    ]
    assert len(fields[0]) == len("2020-02-03T16:47:15.104-08:00")
    import sqlite3

    with sqlite3.connect(tmp_path / "log/flow.db") as db:
        assert db.execute("select src_ip, dst_port, direction from flow_view").fetchall() == [("10.0.0.12", 9999, "I")]
        assert db.execute("select count(*) from drop_flow_view").fetchone() == (0,)
    with sqlite3.connect(tmp_path / "log/flowsum.db") as db:
        assert db.execute("select num_connections from flow_view").fetchall() == [(1,)]
