"""The strings the page script (``static/rank.js``) shows: its buttons and what it announces to screen readers.

They are platform messages like the templates' (``%(name)s`` placeholders are filled in by the script), translated
on the server and put on the ranking form as JSON (``app.i18n.script_strings``)."""

from __future__ import annotations

from app.i18n import N_

STRINGS = {
    "rankNext": N_("Rank next"),
    "unrank": N_("Unrank"),
    "clear": N_("Clear"),
    "clearAria": N_("Clear the ranks of this question"),
    "back": N_("Back"),
    "nextQuestion": N_("Next question"),
    "stepOf": N_("Question %(i)s of %(n)s"),
    "close": N_("Close"),
    "skipped": N_("This question is skipped."),
    "none": N_("Press “Rank next”, best first."),
    "some": N_("%(done)s of %(n)s ranked. Next: rank %(next)s."),
    "all": N_("All ranked."),
    "keys": N_(
        "To rank with the keyboard, press “Rank next” on each image from best to worst. To reorder a ranked image, "
        "focus one of its buttons and press Alt with the up or down arrow."
    ),
    "rankAria": N_("Rank %(image)s next"),
    "unrankAria": N_("Remove rank %(rank)s from %(image)s"),
    "up": N_("Move %(image)s up (better rank)"),
    "down": N_("Move %(image)s down (worse rank)"),
    "backAria": N_("Back to question %(i)s of %(n)s"),
    "nextAria": N_("Next question, %(i)s of %(n)s"),
    "enlarged": N_("%(image)s, enlarged"),
    "ranked": N_("%(image)s ranked %(rank)s of %(n)s."),
    "unranked": N_("%(image)s unranked."),
    "moved": N_("%(image)s moved to rank %(rank)s of %(n)s."),
    "dragged": N_("%(image)s dragged to rank %(rank)s of %(n)s."),
}
