"""cloud-sync's live dashboard: nodes, devices with desired and reported values, recent Events, and
setting a desired value, in a browser (docs/cloud-sync.md, "Dashboard").

It is served by cloud-sync itself (``CloudSyncSettings.dashboard``), from what cloud-sync already
watches, on aiohttp with Server-Sent Events for the live updates; the page is three static files in
``static/`` with plain JavaScript, shipped in the package (no build step, nothing fetched from
elsewhere). ``views`` builds what the page shows, ``board`` follows the watches, ``hub`` pushes to
the open pages, ``writes`` checks and patches desired values, ``server`` is the HTTP side and its
access control, ``site`` runs it all.
"""

from cloud_sync.dashboard.site import DEFAULT_PORT, Dashboard, DashboardSettings, DashboardUnavailable
from cloud_sync.dashboard.writes import DeviceUnusable

__all__ = ["DEFAULT_PORT", "Dashboard", "DashboardSettings", "DashboardUnavailable", "DeviceUnusable"]
