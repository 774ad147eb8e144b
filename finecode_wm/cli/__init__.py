"""The terminal's door: its commands (`commands`), the live rendering of the aggregated stream
(`terminal`) and the findings listing (`listing`)."""

EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a command it ended
