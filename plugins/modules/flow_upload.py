#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: flow_upload
short_description: Upload spooled traffic flow summaries to the Illumio PCE exactly once
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Uploads the traffic flow summaries of a spool directory to the Illumio Policy Compute Engine (PCE) with its
    bulk traffic loader (C(POST /orgs/{org}/agents/bulk_traffic_flows), CSV version 1), in batches.
  - The spool holds files named C(flows-<UTC yyyymmddThhmmssZ>-<seq>.csv), one flow a line as
    C(src_ip,dst_ip,dst_port,proto,num_connections,first_detected,last_detected) (times in epoch seconds), no
    header. Only files with such a name are read (writers create them under another name and rename them
    when complete). They are uploaded in order of their time stamp, then sequence number.
  - Progress is kept next to each file in C(<file>.progress) (JSON, replaced atomically after every batch the
    PCE answered), so an interrupted run resumes where it stopped. A file whose every line was accepted or
    rejected is moved, with its records, to C(done/) in the spool directory; a second run then sends nothing.
  - "Exactly once: before a batch is sent, its line range, a fingerprint (sha256) and up to three probe lines
    are recorded as in flight. When the answer is lost (for example the PCE stopped after storing the batch),
    the batch is not simply sent again: the module asks the PCE, with traffic queries, whether the probes are
    stored, and sends the batch again only when they are not."
  - "Probes are made recognisable without reporting anything false: a probe line's C(last_detected) is moved
    earlier, to a second inside the flow's own observed window that no other line of the file ends at, so the
    PCE learns a slightly shorter window for at most three lines per batch. Lines seen during one second keep
    their time stamps. The connections that the PCE holds for the probe's flow ending at exactly that second
    (the difference of two queries) are the probe's, whatever else the PCE holds for the same flow."
  - Lines the PCE rejects are written to C(<file>.rejected), one JSON object a line with the line number, the
    line and the PCE's message, and counted; they do not stop the rest of the file.
  - Run it on the controller (C(delegate_to) V(localhost), C(run_once)); fetch the hosts' spools there first.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  spool_dir:
    description:
      - Directory on the machine running the module (usually the controller) that holds the spool files.
      - The module writes C(.progress) and C(.rejected) files there and creates C(done/).
    type: path
    required: true
  batch_size:
    description:
      - Flows per upload request, from 1 to 100000. A batch is also kept under 30 MiB of CSV (the lab PCE
        refuses requests over 32 MiB).
    type: int
    default: 1000
  compress:
    description:
      - Send each batch gzip-compressed (C(Content-Encoding) V(gzip)).
    type: bool
    default: false
  in_doubt:
    description:
      - What to do with a batch whose answer was lost when the PCE's traffic shows neither all of its probes nor
        none of them (for example other uploads sent flows ending at the same second).
      - V(fail) stops with the details and sends nothing more for that file; V(resend) sends the batch again
        (risking doubles); V(skip) counts it as stored (risking loss).
    type: str
    choices: [fail, resend, skip]
    default: fail
  query_timeout:
    description:
      - Seconds to wait for each traffic query that checks an in-flight batch.
    type: int
    default: 300
notes:
  - Retries of refused (429, 503) and unsent requests follow O(max_retries) with the client's backoff. A
    request that was sent but got no answer is never resent blindly.
  - Real PCEs may show uploaded flows in traffic queries only after a delay. If the check of an in-flight
    batch runs before they appear, the batch looks absent and is sent again; run the task again after a
    failure rather than immediately in a loop when the PCE was the one that failed.
  - In check mode nothing is sent or written; the flows that would be sent are counted.
"""

EXAMPLES = r"""
- name: Fetch every host's spool to the controller
  ansible.builtin.synchronize:
    mode: pull
    src: /var/spool/illumio-flows/
    dest: "spool/{{ inventory_hostname }}/"

- name: Upload the spools
  microseg.illumio.flow_upload:
    spool_dir: "spool/{{ item }}"
    batch_size: 5000
    compress: true
  loop: "{{ groups['all'] }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
files:
  description: Spool files found.
  returned: always
  type: int
files_done:
  description: Files moved to C(done/) by this run.
  returned: always
  type: int
flows_sent:
  description: Lines sent to the PCE by this run (in check mode, that would be sent).
  returned: always
  type: int
flows_accepted:
  description: Lines the PCE stored.
  returned: always
  type: int
flows_rejected:
  description: Lines the PCE refused (see C(<file>.rejected)).
  returned: always
  type: int
batches_sent:
  description: Batches that reached the PCE - it answered the upload request, or a check after a lost answer
    found them stored. A request that never got through (a failed TLS handshake, a refused connection) is not
    counted.
  returned: always
  type: int
batches_in_doubt:
  description: Batches sent without an answer whose storing the PCE's traffic could not yet confirm or rule out
    (the run failed); the next run checks them before anything is sent again.
  returned: always
  type: int
resumed_batches:
  description: Batches found in flight from an interrupted run.
  returned: always
  type: int
skipped_present_batches:
  description: In-flight batches that the PCE already had, so they were not sent again.
  returned: always
  type: int
resent_batches:
  description: In-flight batches that the PCE did not have and that were sent again.
  returned: always
  type: int
file_status:
  description: Per file, C(status) (V(done), V(failed), V(would_upload), V(would_finish)) and its counts.
  returned: always
  type: list
  elements: dict
  sample:
    - file: flows-20261123T140000Z-1.csv
      status: done
      lines: 2500
      sent: 2500
      accepted: 2500
      rejected: 0
      batches: 3
      resumed: false
      path: /srv/spool/web1/done/flows-20261123T140000Z-1.csv
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.traffic import (
    DEFAULT_BATCH_SIZE,
    IN_DOUBT_CHOICES,
    MAX_BATCH_SIZE,
    Uploader,
    UploadFailed,
)


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        spool_dir=dict(type="path", required=True),
        batch_size=dict(type="int", default=DEFAULT_BATCH_SIZE),
        compress=dict(type="bool", default=False),
        in_doubt=dict(type="str", choices=list(IN_DOUBT_CHOICES), default="fail"),
        query_timeout=dict(type="int", default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not 1 <= params["batch_size"] <= MAX_BATCH_SIZE:
        module.fail_json(msg="batch_size must be from 1 to %d, got %d" % (MAX_BATCH_SIZE, params["batch_size"]))
    client = client_from_module(module)
    uploader = Uploader(
        client,
        params["spool_dir"],
        batch_size=params["batch_size"],
        compress=params["compress"],
        in_doubt=params["in_doubt"],
        query_timeout=params["query_timeout"],
        check_mode=module.check_mode,
    )
    try:
        result = uploader.run()
    except UploadFailed as failure:
        module.fail_json(msg=failure.message, **failure.result)
    except PceError as error:
        module.fail_json(msg=str(error), **uploader.result)
    except OSError as error:
        module.fail_json(msg="spool_dir %s: %s" % (params["spool_dir"], error), **uploader.result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
