"""The ``responses.csv`` contract between the app (which exports it) and the analysis (which reads it)."""

RESPONSE_COLUMNS: tuple[str, ...] = (
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
