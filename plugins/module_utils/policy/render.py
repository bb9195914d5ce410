# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One entry point for both renderers: {part: text} of a host's IR for a backend."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.policy import render_iptables, render_nft
from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import PolicyError

BACKENDS = ("nftables", "iptables")
# backend -> the parts it renders, in the order an applier loads them, with their file name suffixes.
PARTS = {"nftables": ("nft",), "iptables": ("ipset", "iptables", "ip6tables")}


def render(ir, backend):
    """{"nft": text} for nftables; {"ipset", "iptables", "ip6tables": text} for iptables."""
    if backend == "nftables":
        return {"nft": render_nft.render(ir)}
    if backend == "iptables":
        return render_iptables.render(ir)
    raise PolicyError("unknown firewall backend %r: use one of %s" % (backend, ", ".join(BACKENDS)))
