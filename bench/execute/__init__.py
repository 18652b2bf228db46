"""How a run's work is executed beyond one process: Ray tasks (:mod:`.distributed`) and parameter studies
(:mod:`.studies`)."""
