"""The codebook of every export: for each file, each column's type, meaning and allowed values.

``write_codebook(folder)`` writes ``codebook.md`` (for people) and ``codebook.json`` (for programs) beside the CSVs;
tests check that each file's header and its codebook entry list the same columns in the same order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from app.approvals import APPROVAL_COLUMNS, DECISIONS
from app.flow.status import STATUS_VALUES
from app.monitor import FLAGS
from app.participant_table import PARTICIPANT_COLUMNS
from study_designs.responses import RESPONSE_COLUMNS

TIMESTAMP = "ISO 8601 UTC with milliseconds and Z, e.g. 2026-05-01T09:30:00.125Z; empty when not (yet) known"
BOOL = "true | false"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # string | integer | number | boolean | timestamp | list
    meaning: str
    allowed: str = ""


def _c(name: str, type_: str, meaning: str, allowed: str = "") -> Column:
    return Column(name, type_, meaning, allowed)


RESPONSES = (
    _c("round_id", "string", "The study round (one launch of a design with its images)."),
    _c(
        "participant_id",
        "string",
        "Pseudonym of the participant: a keyed hash of the platform id, per round.",
        "p- and 16 hex digits",
    ),
    _c("participant_culture", "string", "The culture the participant chose for themselves.", "a design culture id"),
    _c("page_id", "string", "The page: one prompt and one seed (prompt_id-seed)."),
    _c("page_culture", "string", "The culture the page's images depict.", "a design culture id"),
    _c("prompt_id", "string", "The prompt of the page."),
    _c("seed", "integer", "The generation seed of the page's images."),
    _c("criterion", "string", "The question ranked.", "a design criterion id"),
    _c("model_id", "string", "The model that made this image.", "a design model id"),
    _c("image_id", "string", "The image (opaque id from the manifest)."),
    _c(
        "rank",
        "integer",
        "The participant's rank: 1 = best on the criterion (least offensive, most representative, "
        "best described, least stereotypical).",
        "1..n_items, a permutation per (participant, page, criterion)",
    ),
    _c("n_items", "integer", "Images on the page (ranks run 1..n_items)."),
    _c("initial_position", "integer", "0-based position in which the image was first shown.", "0..n_items-1"),
    _c("moved", "boolean", "The final order differs from the order shown at this image.", BOOL),
    _c("seconds_on_page", "number", "Seconds from first showing the page to its submission; empty if unknown."),
    _c("submitted_at", "timestamp", "When the page was stored.", TIMESTAMP),
    _c("is_attention_check", "boolean", "The page was an attention check.", BOOL),
    _c("is_repeat", "boolean", "The page repeats an earlier page (test-retest).", BOOL),
    _c(
        "attention_passed",
        "boolean",
        "On attention-check rows: whether the check was passed; empty elsewhere.",
        BOOL + " | empty",
    ),
    _c(
        "excluded",
        "boolean",
        "The participant is excluded (failed the design's attention rule, or by a "
        "researcher); analysis drops them by default.",
        BOOL,
    ),
    _c(
        "late",
        "boolean",
        "The page was stored after its time (lease) had run out; it is kept and counted like any other page.",
        BOOL,
    ),
)

PARTICIPANTS = (
    _c("participant_id", "string", "Pseudonym, as in responses.csv."),
    _c("platform", "string", "Where the participant came from.", "prolific | mturk | none"),
    _c("culture", "string", "The culture the participant chose; empty before choosing.", "a design culture id | other"),
    _c("status", "string", "Where the participant stands.", " | ".join(STATUS_VALUES)),
    _c("excluded", "boolean", "As in responses.csv.", BOOL),
    _c("exclusion_reason", "string", "Why a participant was excluded or ineligible (free text or a fixed reason)."),
    _c("created_at", "timestamp", "First visit.", TIMESTAMP),
    _c("completed_at", "timestamp", "When the last page was stored.", TIMESTAMP),
    _c("minutes", "number", "completed_at - created_at in minutes; empty if not completed."),
    _c("pages_submitted", "integer", "Pages stored."),
    _c("median_seconds_per_page", "number", "Median seconds_on_page."),
    _c("failed_checks", "integer", "Attention checks failed."),
    _c("speeding_pages", "integer", "Pages answered faster than the design's speeding threshold."),
    _c("judgments", "integer", "(page, criterion) rankings given."),
    _c("untouched_judgments", "integer", "Rankings left in the order shown."),
    _c("identical_pages", "integer", "Pages where every criterion got the same order."),
    _c("retest_tau", "number", "Kendall's tau between a repeated page and its original; empty without repeats."),
    _c(
        "flags",
        "list",
        "Quality flags raised, joined by ';' (a flag points at a count, it decides nothing).",
        " ; ".join(FLAGS),
    ),
    _c(
        "language",
        "string",
        "The language the participant last answered in (BCP 47, one of the design's languages); empty before consent.",
        "a design language tag | empty",
    ),
)

APPROVALS = (
    _c("platform", "string", "The recruitment platform.", "prolific | mturk | none"),
    _c("participant_id", "string", "The platform's own id (PROLIFIC_PID / workerId): raw, for the researcher only."),
    _c("study_id", "string", "Prolific STUDY_ID or MTurk hitId."),
    _c("session_id", "string", "Prolific SESSION_ID or MTurk assignmentId (the assignment to approve)."),
    _c("status", "string", "Status in the study.", " | ".join(STATUS_VALUES)),
    _c("completed_at", "timestamp", "When the last page was stored.", TIMESTAMP),
    _c("failed_checks", "integer", "Attention checks failed."),
    _c("flags", "list", "Quality flags, as in participants.csv.", " ; ".join(FLAGS)),
    _c(
        "suggestion",
        "string",
        "approve: nothing to look at; review: flags or exclusion to look at first. Never "
        "reject: no single failed check is grounds for rejection.",
        " | ".join(DECISIONS),
    ),
    _c("pseudonym", "string", "The participant_id of responses.csv and participants.csv."),
    _c("AssignmentId", "string", "MTurk bulk upload column (= session_id for MTurk rows)."),
    _c("WorkerId", "string", "MTurk bulk upload column."),
    _c("HITId", "string", "MTurk bulk upload column."),
    _c("Approve", "string", "MTurk bulk upload: x when the suggestion is approve.", "x | empty"),
    _c("Reject", "string", "MTurk bulk upload: always empty (reject by hand, with a reason).", "empty"),
)

FILES: dict[str, tuple[Column, ...]] = {
    "responses.csv": RESPONSES,
    "participants.csv": PARTICIPANTS,
    "approvals.csv": APPROVALS,
}
HEADERS: dict[str, tuple[str, ...]] = {
    "responses.csv": RESPONSE_COLUMNS,
    "participants.csv": PARTICIPANT_COLUMNS,
    "approvals.csv": APPROVAL_COLUMNS,
}  # what each file's header is; the codebook must describe exactly these (checked by the tests)


def codebook_json() -> str:
    data = {
        "timestamps": TIMESTAMP,
        "files": {name: [asdict(c) for c in cols] for name, cols in FILES.items()},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def codebook_md() -> str:
    lines = ["# Codebook", "", f"Timestamps in every file: {TIMESTAMP}.", ""]
    for name, cols in FILES.items():
        lines += [f"## {name}", "", "| column | type | meaning | allowed values |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.meaning} | {c.allowed} |" for c in cols]
        lines.append("")
    return "\n".join(lines)


def write_codebook(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "codebook.md", folder / "codebook.json"
    md.write_text(codebook_md(), encoding="utf-8")
    js.write_text(codebook_json(), encoding="utf-8")
    return [md, js]
