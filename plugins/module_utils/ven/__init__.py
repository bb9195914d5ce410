# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VEN on a managed host: `illumio-ven-ctl` and its output (ctl.py), facts (facts.py), activation options
and the activation file (activation.py), package installs and upgrades (package.py), compatibility checks
(compat.py). Python 3.6+, standard library only: this code runs on the managed host.
"""
