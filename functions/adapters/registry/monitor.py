"""What the registry table records of a model's drift monitor that others read: the id of its
last check (pk=`MONITOR#<model>`, sk=`STATE`; the monitor writes it after the check's
result.json)."""

from __future__ import annotations

from functions.adapters.registry.items import ModelTable
from functions.common import formats
from functions.common.layout import STATE_SORT_KEY, monitor_key


class MonitorReadings(ModelTable):
    """Reads of the drift monitor's state of the models of one registry table."""

    def last_check_id(self, model: str) -> str | None:
        """The id of the model's last drift check, or None before its first."""
        fields = self._get(monitor_key(model), STATE_SORT_KEY)
        if not fields:
            return None
        value = formats.read(formats.MONITOR_STATE_ITEM, fields).get("last_check_id")
        return str(value) if value else None
