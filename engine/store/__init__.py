"""state.db: connection (WAL, foreign keys, 0600), schema + forward migrations, and the shared repositories."""

from engine.store.db import SCHEMA_VERSION, Store, StoreError, open_existing, open_readonly, open_store
from engine.store.ops import Alert, ack_alert, audit, list_alerts, raise_alert

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "open_existing", "open_readonly", "open_store", "Alert", "ack_alert", "audit",
           "list_alerts", "raise_alert"]
