# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy engine: the PCE's active policy (snapshot.py) compiled per host (compiler.py) into an intermediate
form (ir.py), rendered for nftables (render_nft.py) or iptables + ipset (render_iptables.py). See README.md.
"""
