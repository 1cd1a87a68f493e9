"""The schemathesis run of ``test_schemathesis.py`` again, against the distributed
cluster the contract suite shares (SPEC §9: the same API): the same operations,
checks and request count, with answers from two dispatchers over PostgreSQL and a
Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.test_schemathesis import (  # noqa: F401 (collected here as well)
    Sent,
    _pytest_node_id,
    api_schema,
    session,
    test_every_operation_conforms,
    test_integers_beyond_64_bits_are_400_not_stored,
    test_schemathesis_sent_enough_requests,
)
from tests.fixtures.cluster import ClusterServer


@pytest.fixture(scope="module")
def fuzz_server(contract_cluster: ClusterServer) -> Iterator[ClusterServer]:
    """The shared cluster; the request tally starts again for this module."""
    Sent.requests = 0
    Sent.by_status = {}
    Sent.operation = ""
    Sent.ran = False
    yield contract_cluster
