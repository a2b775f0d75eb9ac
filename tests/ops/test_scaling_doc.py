"""docs/scaling.md states the registry's partitions and keys and the cluster settings it promises."""

from __future__ import annotations

import re

from services.common.topics import ALL_TOPICS
from tests.ops.contract import REPO

DOC = REPO / "docs" / "scaling.md"
ROW = re.compile(r"^\| `(cryptopulse\.[a-z-]+)` \| (\d+) \| `([^`]+)` \| (\w+) \|", re.M)


def test_topic_table_matches_the_registry() -> None:
    rows = {name: (int(parts), key, cleanup) for name, parts, key, cleanup in ROW.findall(DOC.read_text())}
    assert rows == {t.name: (t.partitions, t.key, t.cleanup_policy) for t in ALL_TOPICS}


def test_the_guide_covers_workers_gateways_cluster_and_capacity() -> None:
    text = DOC.read_text()
    for needed in ("## Adding processor workers", "## Several gateways behind a load balancer",
                   "## A three-broker Kafka cluster", "## Capacity", "`min.insync.replicas` | 2",
                   "`default.replication.factor` | 3", "--replication-factor 3", "KAFKA_MIN_INSYNC_REPLICAS: 2",
                   "/readyz"):
        assert needed in text, needed
    hot = max(t.partitions for t in ALL_TOPICS if t.name.endswith("trade-bars"))
    assert f"**Useful maximum**: {hot} workers" in text
