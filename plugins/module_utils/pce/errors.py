# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type that PCE library code raises, and the scrubbing that keeps secrets out of it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import base64
import re

REDACTED = "********"

# Credentials can hide in text we did not write (a proxy's error page, a PCE that echoes the request), so
# any Authorization header value is masked whatever it contains.
_AUTHORIZATION_HEADER = re.compile(r"(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)?\s*[^\s'\",}]+", re.IGNORECASE)
# user:password@ in URLs (proxy_url may carry proxy credentials).
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)


class PceError(Exception):
    """A failure talking to the PCE, worded for the person running the playbook.

    Library code raises only this; a module's main() turns it into fail_json(msg=...).
    """

    def __init__(self, message, status=None, token=None, details=None):
        super(PceError, self).__init__(message)
        self.message = message
        self.status = status
        self.token = token
        self.details = details

    def __str__(self):
        return self.message

    def __repr__(self):
        return "PceError(%r, status=%r, token=%r)" % (self.message, self.status, self.token)

    def scrubbed(self, secrets):
        """A copy of this error with every secret removed from its message and details."""
        return PceError(
            scrub(self.message, secrets),
            status=self.status,
            token=scrub(self.token, secrets),
            details=scrub(self.details, secrets),
        )


def secret_forms(username, secret):
    """The ways a secret can appear on the wire: as is and inside the Basic authorization token."""
    if not secret:
        return []
    forms = [secret]
    if username is not None:
        credentials = ("%s:%s" % (username, secret)).encode("utf-8")
        forms.append(base64.b64encode(credentials).decode("ascii"))
    return forms


def scrub(value, secrets):
    """Return value (a string, or lists / dicts of strings) with every secret and credential masked."""
    if isinstance(value, dict):
        return dict((key, scrub(item, secrets)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [scrub(item, secrets) for item in value]
    if not isinstance(value, str):
        return value
    # Longest first, so that a secret which contains another one is masked whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        value = value.replace(secret, REDACTED)
    value = _AUTHORIZATION_HEADER.sub(lambda match: match.group(1) + REDACTED, value)
    return _URL_CREDENTIALS.sub(lambda match: match.group(1) + REDACTED + "@", value)
