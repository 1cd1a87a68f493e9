"""``get_provider_info``: how Airflow finds this provider (the ``apache_airflow_provider``
entry point of ``mussel-kv``). It must not import Airflow: Airflow calls it while
discovering providers."""

from __future__ import annotations

from typing import Any

from mussel.integrations.airflow._connection import CONN_TYPE, HOOK_NAME, UI_FIELD_BEHAVIOUR

_INTEGRATION = "Mussel"
_PKG = "mussel.integrations.airflow"


def get_provider_info() -> dict[str, Any]:
    """The provider's description, in the shape of Airflow's ``provider_info.schema.json``
    (``package-name`` must be the distribution's name, ``mussel-kv``)."""
    return {
        "package-name": "mussel-kv",
        "name": "Mussel",
        "description": "Mussel, a key-value store for derived data: bulk loads and job sensors.",
        "integrations": [{"integration-name": _INTEGRATION, "tags": ["software"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.operators"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors"]}],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers"]}],
        "connection-types": [
            {
                "hook-class-name": f"{_PKG}.hooks.MusselHook",
                "hook-name": HOOK_NAME,
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": {
                    "hidden-fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
                    "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
                    "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
                },
            }
        ],
    }
