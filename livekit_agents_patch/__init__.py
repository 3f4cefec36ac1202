"""The fix for livekit/agents#5359: playout waits that see interruptions, as a patch and tools."""

__version__ = "0.1.0"
