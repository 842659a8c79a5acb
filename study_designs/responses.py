"""The ``responses.csv`` contract between the app (which exports it) and the analysis (which reads it)."""

REQUIRED_RESPONSE_COLUMNS: tuple[str, ...] = (
    "round_id",
    "participant_id",
    "participant_culture",
    "page_id",
    "page_culture",
    "prompt_id",
    "seed",
    "criterion",
    "model_id",
    "image_id",
    "rank",
    "n_items",
    "initial_position",
    "moved",
    "seconds_on_page",
    "submitted_at",
    "is_attention_check",
    "is_repeat",
    "attention_passed",
    "excluded",
)
"""The columns the analysis needs, first and in this order (a file may carry more columns after them)."""

RESPONSE_COLUMNS: tuple[str, ...] = (*REQUIRED_RESPONSE_COLUMNS, "late")
"""The columns the app exports, in order. New columns are only ever appended, so older readers keep working."""
