# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flow logs on a managed host: read the VEN's flow sources and the kernel's connection table (parsers.py),
sum flows per (source, destination, destination port, protocol, decision) (aggregate.py), and write the sums in
the PCE's bulk upload format, as JSON lines, or into a bounded spool directory (writers.py).
Python 3.6+, standard library only: this code runs on the managed host.
"""
