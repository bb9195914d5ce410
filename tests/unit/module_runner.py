"""Run a module's main() in this process with given arguments and return its result dict."""

from __future__ import annotations

from unittest import mock

from ansible.module_utils.basic import AnsibleModule

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib
    import json

    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()):
            yield


class _ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit_json(self, **result):
    result.setdefault("changed", False)
    raise _ModuleExit(result)


def _fail_json(self, msg, **result):
    # Ansible's own fail_json masks no_log values; this one does not, so tests see what the module wrote.
    raise _ModuleExit({**result, "msg": msg, "failed": True})


def run_module(main, args, check_mode=False, diff=False):
    """The result of one module run: exit_json's keyword arguments, or fail_json's plus failed=True."""
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with (
        patch_module_args(args),
        mock.patch.object(AnsibleModule, "exit_json", _exit_json),
        mock.patch.object(AnsibleModule, "fail_json", _fail_json),
    ):
        try:
            main()
        except _ModuleExit as done:
            return done.result
    raise AssertionError("the module returned without calling exit_json or fail_json")
