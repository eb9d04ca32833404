"""The progress board: one Discord message per deployment, kept in step with its workflow."""
