"""Tools the agent mode calls: built-ins registered through entry points (group
``openmuse.tools``), MCP servers' tools, all behind one ``ToolBox`` (``base.py``)."""

from .base import BuiltinTool, Observation, Source, ToolBox, ToolSettings

__all__ = ["BuiltinTool", "Observation", "Source", "ToolBox", "ToolSettings"]
