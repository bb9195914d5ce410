"""Health, async jobs and their datafiles."""

from __future__ import annotations

import time

from starlette.responses import FileResponse
from starlette.routing import Route

from pcelab.errors import not_found
from pcelab.http import Call, endpoint

ORG = "/api/v2/orgs/{org_id:int}"
STARTED = time.monotonic()


@endpoint
def health(call: Call):
    lab = call.lab
    return [
        {
            "status": "normal",
            "fqdn": lab.pce_fqdn,
            "type": "standalone",
            "available_seconds": int(time.monotonic() - STARTED),
            "generated_at": lab.stamp(),
            "nodes": [
                {
                    "hostname": lab.pce_fqdn,
                    "ip_address": "127.0.0.1",
                    "type": "core0",
                    "runlevel": 5,
                    "services": {"status": "running", "running": ["pcelab"]},
                }
            ],
        }
    ]


@endpoint
def get_job(call: Call):
    job = call.lab.job(call.org_id, call.param("job_id"))
    if job is None:
        raise not_found(f"job {call.param('job_id')}")
    return job


@endpoint
def get_datafile(call: Call):
    path = call.lab.datafile_path(call.param("datafile_id"))
    if path is None:
        raise not_found(f"datafile {call.param('datafile_id')}")
    return FileResponse(path, media_type="application/json")


ROUTES = [
    Route("/api/v2/health", health, methods=["GET"]),
    Route(f"{ORG}/jobs/{{job_id}}", get_job, methods=["GET"]),
    Route(f"{ORG}/datafiles/{{datafile_id}}", get_datafile, methods=["GET"]),
]
