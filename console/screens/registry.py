"""Mode name -> screen class, the one place that lists the console's screens."""

from __future__ import annotations

from console.screens.alerts import AlertsScreen
from console.screens.data import DataScreen
from console.screens.desk import DeskScreen
from console.screens.jobs import JobsScreen
from console.screens.models import ModelsScreen
from console.screens.research import ResearchScreen
from console.screens.strategies import StrategiesScreen

SCREEN_CLASSES = {
    "desk": DeskScreen, "strategies": StrategiesScreen, "research": ResearchScreen, "models": ModelsScreen,
    "jobs": JobsScreen, "data": DataScreen, "alerts": AlertsScreen,
}
