"""The embedded reference shop: the whole shop API on one aiohttp port over SQLite, consistent and
durable by default, with named anomalies (anomalies.py) that reproduce real bugs on demand. Or the
same shop as three services behind a gateway (services.py), whose checkout is a saga (saga.py)."""
