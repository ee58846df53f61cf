"""Fine-grained access control roles CALI needs, and their mapping to IAM roles.

FGAC maps an IAM role ARN (a "backend role") to an OpenSearch role. Firehose's roles get
``cali_writer`` (create and write the cali-* indices), as does quality_job's; Grafana's gets
``cali_reader``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cali.search.index import INCIDENTS_INDEX_PATTERN, LOGS_INDEX_PATTERN, QUALITY_INDEX_PATTERN, SearchClient

WRITER_ROLE = "cali_writer"
READER_ROLE = "cali_reader"
# cali-quality-*: quality_job writes the daily check results; Grafana reads them.
_INDICES = [LOGS_INDEX_PATTERN, INCIDENTS_INDEX_PATTERN, QUALITY_INDEX_PATTERN]

# Firehose's documented needs for an FGAC domain: bulk writes, index creation on
# rotation, and the cluster/index metadata calls it makes before delivering.
ROLE_BODIES: dict[str, dict[str, Any]] = {
    WRITER_ROLE: {
        "description": "CALI Firehose delivery streams",
        "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
        "index_permissions": [
            {"index_patterns": _INDICES, "allowed_actions": ["crud", "create_index", "manage"]}
        ],
    },
    READER_ROLE: {
        "description": "CALI dashboards (read only)",
        # The two read-only cluster actions let an operator role listed here run the
        # `cali doctor` checks of CALI's index templates and ISM policies.
        "cluster_permissions": [
            "cluster_composite_ops_ro",
            "cluster_monitor",
            "indices:admin/index_template/get",
            "cluster:admin/opendistro/ism/policy/get",
        ],
        # Grafana's OpenSearch data source also reads each index's mapping for its field
        # list (GET <index>/_mapping), which the `read` action group does not include.
        "index_permissions": [
            {
                "index_patterns": _INDICES,
                "allowed_actions": ["read", "indices_monitor", "indices:admin/mappings/get"],
            }
        ],
    },
}


def apply_roles(client: SearchClient, *, writers: Sequence[str], readers: Sequence[str]) -> None:
    """Create/update both roles and set exactly ``writers``/``readers`` as their backend roles."""
    for role, backend_roles in ((WRITER_ROLE, writers), (READER_ROLE, readers)):
        client.transport.perform_request(
            "PUT", f"/_plugins/_security/api/roles/{role}", body=ROLE_BODIES[role]
        )
        client.transport.perform_request(
            "PUT",
            f"/_plugins/_security/api/rolesmapping/{role}",
            body={"backend_roles": sorted(set(backend_roles)), "hosts": [], "users": []},
        )
