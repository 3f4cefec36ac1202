"""Stand-in for ``livekit.agents.llm``: only the exception the fix derives from."""


class StopResponse(Exception):
    """Raised by a function tool to end its call without a reply (as upstream's)."""

    def __init__(self) -> None:
        super().__init__()
