"""The extension runner processes: one process (`process`), its lifecycle (`lifecycle`), the
child tokens their progress is routed by (`routing`), and the pool that owns them (`pool`)."""
