"""Stand-in for ``livekit.agents.voice``."""
