"""What AWX / AAP does around ansible-runner, as far as the release tests need it: render a custom credential
type's injectors (docs/awx/credential_type_illumio_pce.yml) into files and environment variables, redact the job
environment it stores, and look for a secret in what a job leaves behind.

The injector rendering follows AWX's CredentialType.inject_credential: Jinja2's immutable sandbox; each `file`
template written to a 0600 file in the private data folder's env/, its path in tower.filename.<name>; missing
string inputs render as their default or "". The redaction is AWX's build_safe_env.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

from jinja2 import sandbox

HIDDEN_PASSWORD = "**********"  # AWX's placeholder for hidden values


def inject_credential(credential_type: dict, inputs: dict, private_data_dir: Path) -> dict[str, str]:
    """The environment variables a credential of this type gives a job; writes the files it injects."""
    namespace = {}
    for field in credential_type["inputs"]["fields"]:
        if field["id"] in inputs:
            namespace[field["id"]] = inputs[field["id"]]
        elif field["type"] == "boolean":
            namespace[field["id"]] = field.get("default", False)
        else:
            namespace[field["id"]] = field.get("default", "")
    tower = SimpleNamespace(filename=SimpleNamespace())
    namespace["tower"] = tower
    environment = sandbox.ImmutableSandboxedEnvironment()
    env_dir = private_data_dir / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    for label, template in credential_type["injectors"].get("file", {}).items():
        data = environment.from_string(template).render(**namespace)
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as written:
            written.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." in label:
            setattr(tower.filename, label.split(".", 1)[1], path)
        else:
            tower.filename = path
    return {
        name: environment.from_string(template).render(**namespace)
        for name, template in credential_type["injectors"].get("env", {}).items()
    }


def build_safe_env(env: dict[str, str]) -> dict[str, str]:
    """The job environment as AWX stores it (job_env): values of secret-looking variables hidden."""
    hidden = re.compile(r"API|TOKEN|KEY|SECRET|PASS", re.IGNORECASE)
    url_password = re.compile(r"^.*?://[^:]+:(.*?)@.*?$")
    safe = dict(env)
    for name, value in safe.items():
        if name == "AWS_ACCESS_KEY_ID":
            continue
        if name.startswith("ANSIBLE_") and not name.startswith(("ANSIBLE_NET", "ANSIBLE_GALAXY_SERVER")):
            continue
        if hidden.search(name):
            safe[name] = HIDDEN_PASSWORD
        elif isinstance(value, str) and url_password.match(value):
            safe[name] = url_password.sub(HIDDEN_PASSWORD, value)
    return safe


def secret_forms(secret: str, username: str | None = None) -> dict[str, bytes]:
    """The ways a secret can show up in a file: as is, JSON-escaped, and inside a Basic authorization header."""
    forms = {"secret": secret.encode(), "secret (JSON-escaped)": json.dumps(secret)[1:-1].encode()}
    if username:
        forms["Basic authorization"] = base64.b64encode(f"{username}:{secret}".encode())
    return forms


def find_secret(artifacts: Path, secret: str, username: str | None = None) -> list[str]:
    """Where the secret appears among a job's artifacts, as "path: form", empty when it does not.

    Every file is searched as it is, except ansible-runner's `command` file: runner writes the whole job
    environment there for itself, in the private data folder AWX deletes after the job; AWX keeps the command and
    working folder, and the environment only through build_safe_env. That file is searched as AWX keeps it."""
    assert len(secret) >= 8, "a short secret would match by chance"
    forms = secret_forms(secret, username)
    found = []
    for path in sorted(artifacts.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "command":
            kept = json.loads(data)
            kept["env"] = build_safe_env(kept.get("env") or {})
            data = json.dumps(kept).encode()
        found.extend(f"{path.relative_to(artifacts)}: {form}" for form, value in forms.items() if value in data)
    return found
