# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Declarations of PCE object types that more than one module uses (an object module and its _info module)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.label_dimensions import (
    KEY_NOT_SUPPORTED,
    dimension_exists,
    missing_dimension_error,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import EXTERNAL_DATA, PceObjectType


class Label(PceObjectType):
    name = "label"
    endpoint = "labels"
    identity = ("key", "value")
    fields = EXTERNAL_DATA
    renames = {"new_value": "value"}

    def create(self, payload):
        # The PCE refuses a key that is no label dimension; check mode sends nothing, so it asks the PCE first.
        if self.check_mode and not dimension_exists(self.client, payload["key"]):
            raise missing_dimension_error(payload["key"])
        try:
            return super(Label, self).create(payload)
        except PceError as error:
            if error.token == KEY_NOT_SUPPORTED:
                raise missing_dimension_error(payload["key"], error) from None
            raise
