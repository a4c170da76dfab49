"""disco-bench: the harness around the DisCo method (CLI, matrix, stages, executors, reports)."""
