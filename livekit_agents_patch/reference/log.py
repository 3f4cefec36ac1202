"""Stand-in for ``livekit.agents.log``: the SDK's one logger."""

import logging

logger = logging.getLogger("livekit.agents")
