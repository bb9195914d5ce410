"""Virtual services and labels: `usage.virtual_service` of GET labels?usage=true, and the label-delete check.

The endpoints themselves (/orgs/{org}/sec_policy/{draft,active}/virtual_services) are served by pcelab.api.policy
from policy_model.TYPES; the model is pcelab.virtual_service_model. Draft and active virtual services both count,
as they do for the other policy objects.
"""

from __future__ import annotations

from pcelab.virtual_service_model import KIND, label_hrefs

STATES = ("draft", "active")


def label_usage(lab, org_id: int) -> dict[str, set[str]]:
    return {"virtual_service": label_hrefs([text for state in STATES for text in lab.store.texts(org_id, KIND, state)])}


def label_reference_check(lab, org_id: int, href: str) -> str | None:
    """A label a (draft or active) virtual service uses may not be deleted."""
    for state in STATES:
        users = lab.store.referencing(org_id, [KIND], state, href)
        if users:
            return f"{state} virtual service {users[0]['name']}"
    return None


ROUTES: list = []
