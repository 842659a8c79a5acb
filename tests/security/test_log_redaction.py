import logging
import logging.config

from app.logredact import RedactAccess, redact_path, uvicorn_log_config


def test_paths_lose_query_strings_and_participant_codes():
    assert redact_path("/s/demo?PROLIFIC_PID=5f1a&STUDY_ID=x") == "/s/demo?…"
    assert redact_path("/p/Xy_9secret/page/3") == "/p/…/page/3"
    assert redact_path("/i/tok123") == "/i/…"
    assert redact_path("/console/rounds/demo") == "/console/rounds/demo"


def test_access_records_are_redacted_before_formatting():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/s/demo?workerId=A1B2C3&hitId=H", "1.1", 303), None,
    )  # fmt: skip
    assert RedactAccess().filter(record)
    line = record.getMessage()
    assert "A1B2C3" not in line and "/s/demo?…" in line


def test_served_access_log_uses_the_filter():
    config = uvicorn_log_config()
    assert config["handlers"]["access"]["filters"] == ["redact"]
    logging.config.dictConfig(config)
    access = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, RedactAccess) for h in access.handlers for f in h.filters)
