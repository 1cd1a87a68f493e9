"""The Apache Airflow provider of Mussel (``pip install 'mussel-kv[airflow]'``; Airflow 3).

- ``MusselHook`` (``mussel.integrations.airflow.hooks``): the ``mussel`` connection
  type; ``get_conn()`` returns a ``mussel.Client``.
- ``MusselBulkLoadOperator`` (``.operators``): submits a bulk load, waits for it (or
  defers to ``MusselJobTrigger``), fails with the job's error, pushes the job id to XCom.
- ``MusselJobSensor`` (``.sensors``): waits for a job to reach a final state.
- ``MusselJobTrigger`` (``.triggers``): the trigger both defer to.
- ``get_provider_info`` (``.provider_info``): what Airflow's ``ProvidersManager`` reads
  through the ``apache_airflow_provider`` entry point.

Nothing here is imported eagerly: importing this package does not import Airflow (the
entry point loads ``provider_info`` while Airflow itself is starting up), and nothing
else in ``mussel`` imports this package.
"""

import typing as _typing

if _typing.TYPE_CHECKING:
    from mussel.integrations.airflow.hooks import MusselHook
    from mussel.integrations.airflow.operators import MusselBulkLoadOperator
    from mussel.integrations.airflow.provider_info import get_provider_info
    from mussel.integrations.airflow.sensors import MusselJobSensor
    from mussel.integrations.airflow.triggers import MusselJobTrigger

_WHERE = {
    "MusselHook": "hooks",
    "MusselBulkLoadOperator": "operators",
    "MusselJobSensor": "sensors",
    "MusselJobTrigger": "triggers",
    "get_provider_info": "provider_info",
}


def __getattr__(name: str) -> _typing.Any:
    if name in _WHERE:
        import importlib  # noqa: PLC0415  (deferred: see the module docstring)

        module = importlib.import_module(f"{__name__}.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "MusselBulkLoadOperator",
    "MusselHook",
    "MusselJobSensor",
    "MusselJobTrigger",
    "get_provider_info",
]
