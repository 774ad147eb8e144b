"""The terminal's door: its commands (`commands`), the live rendering of the aggregated stream
(`terminal`) and the findings listing (`listing`)."""
