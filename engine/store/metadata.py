"""The one SQLAlchemy MetaData every table of the store is defined on (schema.py and schema_alerts.py)."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
