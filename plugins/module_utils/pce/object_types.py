# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Declarations of PCE object types that more than one module uses (an object module and its _info module)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import EXTERNAL_DATA, PceObjectType


class Label(PceObjectType):
    name = "label"
    endpoint = "labels"
    identity = ("key", "value")
    fields = EXTERNAL_DATA
    renames = {"new_value": "value"}
