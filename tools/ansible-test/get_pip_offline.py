"""Offline stand-in for the get-pip.py bootstrap script that ansible-test downloads.

`ansible-test sanity --venv` bootstraps pip into each fresh virtual environment by running
https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py, cached under
~/.ansible/test/cache/. That host is not reachable from our CI machines, but PyPI is. This script
does the same job with the standard library: it installs the pip wheel bundled with the running
Python (ensurepip), lets that pip install what ansible-test asked for (e.g. pip==24.2), and honours
get-pip's own --no-setuptools / --no-wheel flags. `make sanity` copies it into the cache under the
name ansible-test looks for.

It must run on every Python that sanity tests use (3.8+), so it keeps to old syntax.
"""

import subprocess
import sys

GET_PIP_FLAGS = {"--no-setuptools": "setuptools", "--no-wheel": "wheel"}


def pip(*args):
    subprocess.check_call([sys.executable, "-m", "pip", *args])


def main():
    unwanted = [GET_PIP_FLAGS[arg] for arg in sys.argv[1:] if arg in GET_PIP_FLAGS]
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_FLAGS]
    # In a child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in its own environment, which would
    # hide the machine's pip configuration (index, CA bundle) from the pip runs that follow.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    pip("install", "--upgrade", *pip_args)
    # ensurepip brings setuptools along on older Pythons; get-pip would not have installed it.
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "list", "--format=freeze"], stdout=subprocess.PIPE, check=True
    ).stdout.decode()
    present = {line.split("==")[0].lower() for line in installed.splitlines()}
    remove = [name for name in unwanted if name in present]
    if remove:
        pip("uninstall", "--yes", *remove)


if __name__ == "__main__":
    main()
