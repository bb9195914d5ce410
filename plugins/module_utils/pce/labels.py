# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Label references: `{role: web, env: prod}` <-> hrefs, from one read of the label collection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError


class LabelResolver(object):
    """Turns labels written as key/value into hrefs and back, reading the PCE's labels once."""

    def __init__(self, client):
        self.client = client
        self._by_href = None
        self._by_key_value = None

    def _load(self):
        if self._by_href is None:
            labels = self.client.get_collection("labels")
            self._by_href = dict((label["href"], label) for label in labels)
            self._by_key_value = dict(((label.get("key"), label.get("value")), label) for label in labels)

    def forget(self):
        """Drop the cache, e.g. after labels were created or renamed."""
        self._by_href = None
        self._by_key_value = None

    def href(self, key, value):
        self._load()
        label = self._by_key_value.get((key, value))
        if label is None:
            raise PceError(
                "label %s=%s does not exist on the PCE (create it with microseg.illumio.label first)" % (key, value)
            )
        return label["href"]

    def hrefs(self, labels):
        """Hrefs for labels given as `{role: web, env: prod}`, `[{key: role, value: web}]` or `[{role: web}]`."""
        return [self.href(key, value) for key, value in key_value_pairs(labels)]

    def refs(self, labels):
        """The PCE's reference form, `[{"href": ...}]`, for labels given as in hrefs()."""
        return [{"href": href} for href in self.hrefs(labels)]

    def describe(self, href):
        """`{key, value}` of a label href, for showing references the way users write them."""
        self._load()
        label = self._by_href.get(href)
        if label is None:
            return {"href": href}
        return {"key": label.get("key"), "value": label.get("value")}


def key_value_pairs(labels):
    """Normalise the ways users write labels into a list of (key, value)."""
    if labels is None:
        return []
    if isinstance(labels, dict):
        labels = [labels] if set(labels) == {"key", "value"} else [{key: value} for key, value in labels.items()]
    pairs = []
    for label in labels:
        if isinstance(label, dict) and set(label) == {"key", "value"}:
            pairs.append((label["key"], label["value"]))
        elif isinstance(label, dict) and len(label) == 1:
            pairs.append(next(iter(label.items())))
        else:
            raise PceError("a label must be written as {key: ..., value: ...} or {<key>: <value>}, got %r" % (label,))
    return pairs
