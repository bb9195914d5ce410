"""flow_upload against a fake PCE: batches, resume, the lost answer settled exactly once, rejects, gzip, check mode."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce import traffic
from ansible_collections.microseg.illumio.plugins.modules import flow_upload
from fake_pce_traffic import start_traffic_pce
from module_runner import run_module

BASE = 1795430000  # 2026-11-23 ~ 13:13 UTC


@pytest.fixture
def pce(tls_files):
    pce, server = start_traffic_pce(tls_files)
    yield pce
    server.shutdown()
    server.server_close()


def write_spool(folder, files=2, per_file=250, bad=()):
    """Spool files as the host-side writer makes them; returns (lines, total connections)."""
    folder.mkdir(exist_ok=True)
    lines, total = [], 0
    for number in range(files):
        chunk = []
        for i in range(per_file):
            n = number * per_file + i
            first = BASE + n % 300
            src, dst = f"10.1.{n // 200}.{n % 200 + 1}", f"10.2.0.{n % 7 + 1}"
            line = f"{src},{dst},{8000 + n % 9},6,{1 + n % 4},{first},{first + n % 40}"
            if n in bad:
                line = f"10.1.0.1,10.2.0.1,70000,6,1,{first},{first}"
            else:
                total += 1 + n % 4
            chunk.append(line)
        lines.extend(chunk)
        path = folder / f"flows-20261123T1300{number:02d}Z-{number}.csv"
        path.write_text("\n".join(chunk) + "\n")
        os.chmod(path, 0o600)
    return lines, total


def upload(pce, spool, check_mode=False, **args):
    return run_module(flow_upload.main, pce.connection(spool_dir=str(spool), **args), check_mode=check_mode)


def connections_by_flow(pce):
    counts = {}
    for src, dst, port, proto, connections, _first, _last in pce.flows:
        counts[(src, dst, port, proto)] = counts.get((src, dst, port, proto), 0) + connections
    return counts


def test_uploads_in_batches_then_moves_files_to_done_and_a_rerun_sends_nothing(pce, tmp_path):
    spool = tmp_path / "spool"
    lines, total = write_spool(spool)
    result = upload(pce, spool, batch_size=100)
    assert result["changed"] is True, result
    assert (result["files"], result["files_done"], result["batches_sent"]) == (2, 2, 6)
    assert result["flows_sent"] == result["flows_accepted"] == 500
    assert pce.total_connections() == total
    assert all(upload.headers["x-bulk-traffic-load-csv-version"] == "1" for upload in pce.uploads)
    assert all(upload.headers["content-type"] == "text/csv" for upload in pce.uploads)
    assert sorted(os.listdir(spool / "done")) == sorted(
        [name for name in os.listdir(spool / "done") if name.endswith((".csv", ".progress"))]
    )
    assert sorted(name for name in os.listdir(spool) if name != "done") == []
    progress = json.loads((spool / "done" / "flows-20261123T130000Z-0.csv.progress").read_text())
    assert [(batch["start"], batch["end"], batch["accepted"]) for batch in progress["batches"]] == [
        (0, 100, 100),
        (100, 200, 100),
        (200, 250, 50),
    ]
    assert oct(os.stat(spool / "done" / "flows-20261123T130000Z-0.csv.progress").st_mode & 0o777) == "0o600"
    # Only probe lines differ from the spool, and only in last_detected, inside their own window.
    stored = sorted(flow[:6] for flow in pce.flows)
    assert stored == sorted(traffic.parse_line(line)[:6] for line in lines)

    again = upload(pce, spool)
    assert again["changed"] is False
    assert again["files"] == again["flows_sent"] == 0
    assert pce.total_connections() == total


def test_files_are_uploaded_in_name_order_and_temporary_files_are_ignored(pce, tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool, files=2, per_file=10)
    (spool / ".flows-20261123T120000Z-9.csv.tmp").write_text("10.0.0.1,10.0.0.2,1,6,1,1,1\n")
    result = upload(pce, spool)
    assert [status["file"] for status in result["file_status"]] == [
        "flows-20261123T130000Z-0.csv",
        "flows-20261123T130001Z-1.csv",
    ]
    assert (spool / ".flows-20261123T120000Z-9.csv.tmp").exists()


def test_lost_answer_is_checked_against_the_pce_and_not_sent_twice(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool)
    pce.drop_after_commit = {2}  # the second batch is stored, then the connection dies unanswered
    result = upload(pce, spool, batch_size=100)
    assert result.get("failed") is not True, result
    assert result["skipped_present_batches"] == 1
    assert result["resent_batches"] == 0
    assert pce.total_connections() == total
    assert max(connections_by_flow(pce).values()) <= 4  # nothing doubled
    [check] = result["file_status"][0]["checks"]
    assert check["presence"] == "present"
    assert all(probe["found"] == probe["expected"] for probe in check["probes"])


def test_lost_answer_while_the_pce_is_down_resumes_on_the_next_run_exactly_once(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool)
    pce.drop_after_commit = {2}
    pce.queries_down = True
    failed = upload(pce, spool, batch_size=100)
    assert failed["failed"] is True
    assert "Run the task again" in failed["msg"]
    progress = json.loads((spool / "flows-20261123T130000Z-0.csv.progress").read_text())
    assert progress["in_flight"]["start"] == 100
    assert progress["next_line"] == 100

    pce.queries_down = False
    resumed = upload(pce, spool, batch_size=100)
    assert resumed["resumed_batches"] == 1
    assert resumed["skipped_present_batches"] == 1
    assert resumed["resent_batches"] == 0
    assert resumed["files_done"] == 2
    assert pce.total_connections() == total


def test_batch_that_never_arrived_is_sent_again(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool, files=1)
    spool_file = traffic.SpoolFile(str(spool), "flows-20261123T130000Z-0.csv")
    probes = traffic.choose_probes(spool_file, 0, 100, traffic.known_flow_ends(spool_file))
    lines, _numbers = traffic.batch_lines(spool_file, 0, 100, probes)
    spool_file.progress["in_flight"] = {"start": 0, "end": 100, "sha256": traffic.batch_digest(lines), "probes": probes}
    spool_file.save()  # as a run that died before its request left
    result = upload(pce, spool, batch_size=100)
    assert (result["resumed_batches"], result["resent_batches"], result["skipped_present_batches"]) == (1, 1, 0)
    assert pce.total_connections() == total


def test_unclear_evidence_stops_the_file_unless_told_how_to_decide(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool, files=1)
    spool_file = traffic.SpoolFile(str(spool), "flows-20261123T130000Z-0.csv")
    probes = traffic.choose_probes(spool_file, 0, 100, traffic.known_flow_ends(spool_file))
    lines, _numbers = traffic.batch_lines(spool_file, 0, 100, probes)
    spool_file.progress["in_flight"] = {"start": 0, "end": 100, "sha256": traffic.batch_digest(lines), "probes": probes}
    spool_file.save()
    # Someone else uploaded the first probe's flow, ending at its marker second: one probe found, two not.
    probe = probes[0]
    pce.flows.append(
        (probe["src"], probe["dst"], probe["port"], probe["proto"], probe["connections"], BASE, probe["marker"])
    )
    failed = upload(pce, spool, batch_size=100)
    assert failed["failed"] is True
    assert "does not tell" in failed["msg"]
    assert len(pce.uploads) == 0
    resent = upload(pce, spool, batch_size=100, in_doubt="resend")
    assert resent["resent_batches"] == 1
    assert pce.total_connections() == total + probe["connections"]


def test_rejected_lines_are_recorded_and_do_not_block_the_rest(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool, files=1, per_file=50, bad={3, 40})
    result = upload(pce, spool, batch_size=20)
    assert (result["flows_sent"], result["flows_accepted"], result["flows_rejected"]) == (50, 48, 2)
    assert pce.total_connections() == total
    rejected = [
        json.loads(line) for line in (spool / "done" / "flows-20261123T130000Z-0.csv.rejected").read_text().splitlines()
    ]
    assert [entry["line"] for entry in rejected] == [4, 41]
    assert "70000" in rejected[0]["message"]
    assert rejected[0]["flow"].startswith("10.1.0.1,10.2.0.1,70000")


def test_gzip_bodies(pce, tmp_path):
    spool = tmp_path / "spool"
    _lines, total = write_spool(spool, files=1, per_file=30)
    upload(pce, spool, compress=True, batch_size=1000)
    [sent] = pce.uploads
    assert sent.headers["content-encoding"] == "gzip"
    assert len(gzip.decompress(sent.raw).decode().splitlines()) == 30
    assert pce.total_connections() == total


def test_check_mode_counts_without_sending_or_writing(pce, tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool)
    before = sorted(os.listdir(spool))
    result = upload(pce, spool, check_mode=True)
    assert result["changed"] is True
    assert result["flows_sent"] == 500
    assert [status["status"] for status in result["file_status"]] == ["would_upload", "would_upload"]
    assert pce.uploads == [] and pce.query_bodies == []
    assert sorted(os.listdir(spool)) == before


def test_whole_request_refused_fails_without_recording_a_batch(pce, tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool, files=1, per_file=10)
    pce.refuse_upload_status = 403
    failed = upload(pce, spool)
    assert failed["failed"] is True
    progress = json.loads((spool / "flows-20261123T130000Z-0.csv.progress").read_text())
    assert progress["in_flight"] is None and progress["next_line"] == 0


def test_changed_file_is_refused(pce, tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool, files=1, per_file=10)
    pce.drop_after_commit = {1}
    pce.queries_down = True
    upload(pce, spool)
    (spool / "flows-20261123T130000Z-0.csv").write_text("10.0.0.1,10.0.0.2,1,6,1,1,1\n")
    failed = upload(pce, spool)
    assert failed["failed"] is True
    assert "changed since" in failed["msg"]


def test_probe_markers_stay_inside_the_flow_window(tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool, files=1)
    spool_file = traffic.SpoolFile(str(spool), "flows-20261123T130000Z-0.csv")
    taken = traffic.known_flow_ends(spool_file)
    probes = traffic.choose_probes(spool_file, 0, 250, taken)
    assert len(probes) == traffic.PROBES_PER_BATCH
    for probe in probes:
        _src, _dst, _port, _proto, _n, first, last = traffic.parse_line(spool_file.lines[probe["line"]])
        assert first <= probe["marker"] < last


def test_batch_size_is_bounded(pce, tmp_path):
    result = upload(pce, tmp_path, batch_size=0)
    assert result["failed"] is True and "batch_size" in result["msg"]


def test_gateway_errors_without_the_batch_on_the_pce_are_resent_a_bounded_number_of_times(pce, tmp_path):
    spool = tmp_path / "spool"
    write_spool(spool, files=1, per_file=10)
    pce.refuse_upload_status = 502  # nothing stored, and 502 may mean "processed" for a POST: checked each time
    failed = upload(pce, spool)
    assert failed["failed"] is True
    assert "3 times" in failed["msg"]
    assert failed["batches_sent"] == 3 and failed["resent_batches"] == 2
    assert pce.flows == []
    progress = json.loads((spool / "flows-20261123T130000Z-0.csv.progress").read_text())
    assert progress["in_flight"]["start"] == 0


def test_a_failed_tls_handshake_sends_no_batch_and_changes_nothing(pce, tls_files, tmp_path):
    """Issue 17, finding 3: the handshake failed, so no batch reached the PCE (it said batches_sent 1, changed)."""
    spool = tmp_path / "spool"
    write_spool(spool, files=1, per_file=10)
    failed = upload(pce, spool, ca_path=str(tls_files.other_ca_cert))
    assert failed["failed"] is True and "TLS certificate verification failed" in failed["msg"]
    assert failed["changed"] is False
    assert failed["batches_sent"] == 0 and failed["flows_sent"] == 0
    assert failed["batches_in_doubt"] == 1  # the module cannot tell yet; the next run checks before resending
    assert pce.uploads == [] and pce.flows == []
    # Once the PCE can be reached, the batch is checked (absent), sent once, and counted once.
    done = upload(pce, spool)
    assert done["changed"] is True and done["batches_sent"] == 1 and done["batches_in_doubt"] == 0
    assert done["resumed_batches"] == 1 and done["resent_batches"] == 1
    assert len(pce.flows) == 10
