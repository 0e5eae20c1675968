"""Ray Tune orchestration of the supernet -> search -> retrain pipeline (imports ray lazily)."""
