"""Health, product version, async jobs and their datafiles."""

from __future__ import annotations

import time

from starlette.responses import FileResponse
from starlette.routing import Route

from pcelab.errors import not_found
from pcelab.http import Call, endpoint

ORG = "/api/v2/orgs/{org_id:id}"
STARTED = time.monotonic()
# The PCE release the lab answers as. Shape of GET /api/v2/product_version: version and display strings, the
# build as a number (brian1917/illumioapi's Version type: version string, build int, long_display
# "<version>-<build>", short_display "<version>"). 23.2 is the VEN release of shared/reference's install guide.
PRODUCT_VERSION = "23.2.10"
PRODUCT_BUILD = 123


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
def product_version(call: Call):
    return {
        "version": PRODUCT_VERSION,
        "build": PRODUCT_BUILD,
        "long_display": f"{PRODUCT_VERSION}-{PRODUCT_BUILD}",
        "short_display": PRODUCT_VERSION,
    }


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
    Route("/api/v2/product_version", product_version, methods=["GET"]),
    Route(f"{ORG}/jobs/{{job_id}}", get_job, methods=["GET"]),
    Route(f"{ORG}/datafiles/{{datafile_id}}", get_datafile, methods=["GET"]),
]
