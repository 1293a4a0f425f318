"""What admins control and see: `/luma admin` (commands.py), usage reports and the CSV export
(reports.py, export.py), retention and forgetting (retention.py), and budget alerts (alerts.py). Core code:
it reaches Slack only through the ports."""

from .alerts import BudgetAlerts
from .commands import AdminAnswer, AdminCommands
from .export import Exports
from .reports import Reports
from .retention import Retention

__all__ = ["AdminAnswer", "AdminCommands", "BudgetAlerts", "Exports", "Reports", "Retention"]
