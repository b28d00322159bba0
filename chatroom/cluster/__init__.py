"""Several server nodes as one chat (docs/cluster.md).

Each node is the usual server (chatroom/server/) around a core in cluster mode:
PostgreSQL numbers and stores every event (storage/sequencer.py), the broker
carries what was stored to the other nodes and holds the claims (names, node
leases), and each node applies every stored event in order (server/replica.py).

- wire.py: a batch of stored events as broker payload bytes;
- redis_broker.py: Redis: publish/subscribe, name claims, node leases, presence;
- node.py: the node: commits drafts, publishes, applies, repairs, reaps.
"""
