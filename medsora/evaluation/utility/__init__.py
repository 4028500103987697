"""Downstream utility of generated videos (classification accuracy score / R² of a model trained on them)."""
