"""FastAPI service of the ranking study: rounds, assignment, participant pages, export."""
