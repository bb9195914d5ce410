# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks every module shares on its options: no list or dict silently turned into text, no credentials of a URL
shown in results or logs, a warning when TLS certificates are not checked.

Runs on managed hosts too: Python 3.6+, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from urllib.parse import unquote

INSECURE_WARNING = (
    "validate_certs is false: the PCE's TLS certificate is not checked, so anyone in the network path can read "
    "and change what is sent, the API key included. Set ca_path (or ILLUMIO_PCE_CA_PATH) to the CA of the PCE "
    "instead."
)
# Types Ansible converts a list or dict to without a word: str(['a', 'b']) becomes the text "['a', 'b']".
_STRINGIFIED_TYPES = ("str", "path")
_NOT_SCALAR = (list, tuple, dict, set, frozenset)


# --- credentials in URLs ----------------------------------------------------------------------------------------
def _split_userinfo(url):
    """(prefix up to the authority, user info or None, the rest) of a URL or of HOST[:PORT] with user info.

    The user info ends at the last "@", so a password with "/", "#", "?" or "@" in it is cut off whole even
    when it was not percent-encoded (a URL parser would take part of it for the path or the fragment).
    """
    text = url if isinstance(url, str) else ""
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    prefix = scheme + separator
    if "@" not in rest:
        return prefix, None, rest
    userinfo, _at, host = rest.rpartition("@")
    return prefix, userinfo, host


def url_credentials(url):
    """The secrets of a URL's user info (`user:password`, the password, and their decoded forms); [] if none."""
    userinfo = _split_userinfo(url)[1]
    if not userinfo:
        return []
    password = userinfo.partition(":")[2]
    forms = [userinfo, password, unquote(userinfo), unquote(password)]
    found = []
    for form in forms:
        if form and form not in found:
            found.append(form)
    return found


def without_credentials(url):
    """The URL with any user name and password left out, to show in messages: http://proxy.example.com:3128."""
    prefix, _userinfo, rest = _split_userinfo(url)
    return prefix + rest


def hide_credentials(module, *names):
    """Mask the user info of the URL options `names` wherever the module's results (invocation included) show it."""
    for name in names:
        for secret in url_credentials(module.params.get(name)):
            module.no_log_values.add(secret)


# --- lists and dicts given to text options ----------------------------------------------------------------------
def stringified_options(argument_spec, params, prefix=""):
    """Problems, one per option of type str or path (also inside lists and suboptions) given a list or dict.

    Ansible would turn such a value into its Python text (`label value: [a, b]` becomes the label "['a', 'b']")
    without a word. `params` are the module's arguments as the task gave them, before Ansible's conversions.
    """
    problems = []
    if not isinstance(params, dict):
        return problems
    for name, spec in argument_spec.items():
        spec = spec or {}
        given = [key for key in [name, *(spec.get("aliases") or [])] if key in params]
        if not given:
            continue
        where = prefix + given[0]
        value = params[given[0]]
        if value is None:
            continue
        kind = spec.get("type", "str")
        if kind in _STRINGIFIED_TYPES:
            if isinstance(value, _NOT_SCALAR):
                problems.append(_not_text(where, value, spec))
        elif kind == "list" and isinstance(value, (list, tuple)):
            elements = spec.get("elements")
            for index, item in enumerate(value):
                item_where = "%s[%d]" % (where, index)
                if elements in _STRINGIFIED_TYPES and isinstance(item, _NOT_SCALAR):
                    problems.append(_not_text(item_where, item, spec))
                elif elements == "dict" and spec.get("options") and isinstance(item, dict):
                    problems.extend(stringified_options(spec["options"], item, item_where + "."))
        elif kind == "dict" and spec.get("options") and isinstance(value, dict):
            problems.extend(stringified_options(spec["options"], value, where + "."))
    return problems


def _not_text(where, value, spec):
    kind = "a dict" if isinstance(value, dict) else "a list"
    if spec.get("no_log"):
        return "%s must be a single value, not %s" % (where, kind)
    return "%s must be a single value, not %s (%r); quote it if you mean that text" % (where, kind, value)


def raw_module_args():
    """The module's arguments as the task gave them (before type conversion), or None when they cannot be read."""
    try:
        from ansible.module_utils import basic

        params = basic._load_params()
    except Exception:  # any failure to re-read them means: no check, never a traceback
        return None
    return params if isinstance(params, dict) else None


def refuse_stringified(module):
    """Fail the module when a list or dict was given to a text option (Ansible would stringify it silently)."""
    raw = raw_module_args()
    if raw is None:
        return
    problems = stringified_options(module.argument_spec, raw)
    if problems:
        module.fail_json(msg="; ".join(problems))
