"""24/7 monitoring: follow rotating captures, judge traffic interval by interval, alert.

The platform room that runs the parts continuously: it reads with ``packets`` (a capture
follower), judges with ``backscatter`` (the same flow as ``backscatter detect``), queues
experts' work in ``store``, and keeps a checkpoint so that a restart loses and repeats
nothing. No part imports it.
"""

from darkscope.monitor.engine import Engine
from darkscope.monitor.service import Monitor, Settings

__all__ = ["Engine", "Monitor", "Settings"]
