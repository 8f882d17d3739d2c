#!/usr/bin/env bash
# scripts/kafka/cluster_id.sh: prints a new KRaft cluster id, as Kafka's own
# Uuid.randomUuid makes them: base64url of a random UUID, without padding,
# and never starting with "-" (kafka-storage format would read it as an
# option). Used by start.sh and cluster.sh.
set -euo pipefail
python3 -c '
import base64, uuid
while True:
    i = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not i.startswith("-"):
        print(i)
        break'
