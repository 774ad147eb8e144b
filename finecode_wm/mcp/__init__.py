"""The agents' door: the MCP server (`server`, official SDK) and the aggregated stream as MCP
progress notifications (`progress`)."""
