"""One job, end to end: its input schema and the runner. Knows nothing of RunPod."""
