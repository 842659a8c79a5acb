/* Ranking page enhancements.

   The <select> boxes stay the single source of truth: what the form submits is exactly what they hold. Every
   gesture here (tap-to-rank, drag, Alt+Arrow keys, move buttons) only sets those selects, and only in answer to
   something the participant did. Nothing is ever chosen on load: an untouched page keeps every select on its empty
   "Choose rank" option, and the server refuses it.

   Rules:
   - Images start unranked. "Rank next" gives an image the lowest rank no other image holds (1, then 2, ...).
   - Tapping a ranked image's button again unranks it, and the images ranked after it move up one place (rank 3
     becomes 2, ...), so the ranks in use stay 1..m and the next tap continues at m + 1. Leaving a gap instead would
     make the next tap refill the hole just made, which is rarely what someone correcting an order wants.
   - Alt+Arrow (and the up/down buttons) swap a ranked image with the neighbouring ranked image; dragging a ranked
     image onto another ranked image moves it to that place; dragging an unranked image onto a ranked one ranks it
     there. Unranked images cannot be moved, only ranked.
   - Choosing a rank in a select directly is taken as given (no renumbering); if another image of that question
     held that rank, the two swap (the other one takes the old rank, or becomes unranked).
   - Nothing moves under the finger: images stay where the page put them, and a badge on each shows its rank.
   - With several questions, one question is shown at a time (Back / Next question); the form stays one form, and
     without JavaScript every question is shown in turn. */
(function () {
  "use strict";

  var live = document.getElementById("rank-status");
  var formEl = document.querySelector("form.ranking");

  /* The page's own language: the server puts the translated strings on the form (data-strings); these English
     ones are the fallback. "%(name)s" placeholders are filled in by t(). */
  var STRINGS = {
    rankNext: "Rank next", unrank: "Unrank", clear: "Clear", clearAria: "Clear the ranks of this question", back: "Back", nextQuestion: "Next question",
    stepOf: "Question %(i)s of %(n)s", close: "Close", skipped: "This question is skipped.",
    none: "Press “Rank next”, best first.",
    some: "%(done)s of %(n)s ranked. Next: rank %(next)s.",
    all: "All ranked.",
    keys: "To rank with the keyboard, press “Rank next” on each image from best to worst. "
      + "To reorder a ranked image, focus one of its buttons and press Alt with the up or down arrow.",
    rankAria: "Rank %(image)s next", unrankAria: "Remove rank %(rank)s from %(image)s",
    up: "Move %(image)s up (better rank)", down: "Move %(image)s down (worse rank)",
    backAria: "Back to question %(i)s of %(n)s", nextAria: "Next question, %(i)s of %(n)s",
    enlarged: "%(image)s, enlarged", ranked: "%(image)s ranked %(rank)s of %(n)s.",
    unranked: "%(image)s unranked.", moved: "%(image)s moved to rank %(rank)s of %(n)s.",
    dragged: "%(image)s dragged to rank %(rank)s of %(n)s."
  };
  try {
    var given = JSON.parse((formEl && formEl.getAttribute("data-strings")) || "{}");
    Object.keys(given).forEach(function (k) { if (typeof given[k] === "string") { STRINGS[k] = given[k]; } });
  } catch (e) { /* keep the English strings */ }
  function t(key, values) {
    return STRINGS[key].replace(/%\((\w+)\)s/g, function (m, name) {
      return values && name in values ? String(values[name]) : m;
    });
  }

  function announce(message) {
    if (live) { live.textContent = message; }
  }

  function imageName(li) {
    var img = li.querySelector("img");
    return img ? img.getAttribute("alt") : "Image";
  }

  /* Re-focus an element that a DOM move or a disabled state took focus away from. */
  function keepFocus(el, fallback) {
    if (!el || el === document.body || document.activeElement === el) { return; }
    if (el.disabled && fallback) { el = fallback; }
    if (document.contains(el)) { el.focus(); }
  }

  function setup(fieldset) {
    var list = fieldset.querySelector("ol.items");
    if (!list) { return; }
    var legend = fieldset.querySelector("legend");
    var question = legend ? legend.textContent.trim() : "";
    var skip = fieldset.querySelector(".skip input[type=checkbox]");
    var hadError = fieldset.classList.contains("invalid");
    var dragged = null;
    var last = new Map();  /* select -> value before the participant's latest change (for swaps) */
    fieldset.classList.add("enhanced");

    function items() { return Array.prototype.slice.call(list.querySelectorAll(":scope > li.item")); }
    function select(li) { return li.querySelector("select"); }
    function index(li) { return Number(li.getAttribute("data-index")); }
    function rankOf(li) { var v = select(li).value; return v === "" ? null : Number(v); }
    function setRank(li, r) { select(li).value = r === null ? "" : String(r); }
    function skipped() { return Boolean(skip && skip.checked); }
    function total() { return items().length; }
    function holder(r, except) {
      return items().filter(function (li) { return li !== except && rankOf(li) === r; })[0] || null;
    }
    function ranked() {
      return items().filter(function (li) { return rankOf(li) !== null; })
        .sort(function (a, b) { return (rankOf(a) - rankOf(b)) || (index(a) - index(b)); });
    }
    function unranked() {
      return items().filter(function (li) { return rankOf(li) === null; })
        .sort(function (a, b) { return index(a) - index(b); });
    }
    function lowestFree() {
      for (var r = 1; r <= total(); r += 1) { if (!holder(r, null)) { return r; } }
      return null;
    }
    function complete() {
      var seen = {};
      return items().every(function (li) {
        var r = rankOf(li);
        if (r === null || seen[r]) { return false; }
        seen[r] = true;
        return true;
      });
    }
    function remember() { items().forEach(function (li) { last.set(select(li), select(li).value); }); }

    var tapHelp = document.createElement("p");
    tapHelp.className = "tap-help";
    tapHelp.id = "tap-help-" + (fieldset.getAttribute("data-criterion") || "");
    var clear = document.createElement("button");
    clear.type = "button";
    clear.className = "reset";
    clear.textContent = t("clear");
    clear.setAttribute("aria-label", t("clearAria"));
    var helpRow = document.createElement("div");
    helpRow.className = "help-row";
    helpRow.appendChild(tapHelp);
    helpRow.appendChild(clear);
    list.parentNode.insertBefore(helpRow, list);

    /* Shows what the selects hold. Reads the selects, never writes them, and never moves an image. */
    function render() {
      var order = items();
      var seq = ranked();
      var n = total();
      var off = skipped();
      order.forEach(function (li) {
        var r = rankOf(li);
        var name = imageName(li);
        var at = seq.indexOf(li);
        var badge = li.querySelector(".rank-badge");
        badge.textContent = r === null ? "" : String(r);
        li.classList.toggle("ranked", r !== null);
        var tap = li.querySelector(".tap");
        tap.textContent = r === null ? t("rankNext") : t("unrank");
        tap.setAttribute("aria-label", r === null ? t("rankAria", { image: name }) : t("unrankAria", { rank: r, image: name }));
        tap.disabled = off;
        li.querySelector(".up").disabled = off || r === null || at <= 0;
        li.querySelector(".down").disabled = off || r === null || at < 0 || at >= seq.length - 1;
        li.draggable = !off;
        if (hadError) { select(li).setAttribute("aria-invalid", off || complete() ? "false" : "true"); }
      });
      var free = lowestFree();
      if (off) {
        tapHelp.textContent = t("skipped");
      } else if (seq.length === 0) {
        tapHelp.textContent = t("none");
      } else if (free !== null) {
        tapHelp.textContent = t("some", { done: seq.length, n: n, next: free });
      } else {
        tapHelp.textContent = t("all");
      }
      clear.hidden = off || seq.length === 0;
      remember();
    }

    function tap(li) {
      if (skipped()) { return; }
      var name = imageName(li);
      var r = rankOf(li);
      if (r === null) {
        var free = lowestFree();
        if (free === null) { announce("Every rank is taken. Unrank an image first. " + question); return; }
        setRank(li, free);
        render();
        announce(t("ranked", { image: name, rank: free, n: total() }) + " " + question);
        return;
      }
      setRank(li, null);
      var after = items().filter(function (other) { return rankOf(other) !== null && rankOf(other) > r; });
      after.forEach(function (other) { setRank(other, rankOf(other) - 1); });
      render();
      announce(t("unranked", { image: name }) + " " + question);
    }

    function move(li, delta, how) {
      if (skipped()) { return; }
      var name = imageName(li);
      if (rankOf(li) === null) { announce(name + " is not ranked yet. Rank it first, then move it."); return; }
      var seq = ranked();
      var at = seq.indexOf(li);
      var other = seq[at + delta];
      if (!other) {
        announce(name + " is already the " + (delta < 0 ? "first" : "last") + " ranked image, rank " + rankOf(li) + ".");
        return;
      }
      var mine = rankOf(li);
      setRank(li, rankOf(other));
      setRank(other, mine);
      render();
      announce(t("moved", { image: name, rank: rankOf(li), n: total() }) + " " + question);
    }

    function dropOnto(li, target) {
      if (skipped() || rankOf(target) === null) { return; }
      var seq = ranked();
      var values = seq.map(rankOf);
      var to = seq.indexOf(target);
      var from = seq.indexOf(li);
      if (from >= 0) {
        seq.splice(from, 1);
      } else {
        var free = lowestFree();
        if (free === null) { return; }
        values.push(free);
        values.sort(function (a, b) { return a - b; });
      }
      seq.splice(to, 0, li);
      seq.forEach(function (el, i) { setRank(el, values[i]); });
      render();
      announce(t("dragged", { image: imageName(li), rank: rankOf(li), n: total() }) + " " + question);
    }

    clear.addEventListener("click", function () {
      items().forEach(function (li) { setRank(li, null); });
      render();
      announce("Ranks cleared for this question. Next: rank 1. " + question);
      var first = list.querySelector("li.item .tap");
      if (first) { first.focus(); }
    });

    items().forEach(function (li) {
      var name = imageName(li);

      var badge = document.createElement("span");
      badge.className = "rank-badge";
      badge.setAttribute("aria-hidden", "true");
      li.insertBefore(badge, li.firstChild);

      var controls = document.createElement("div");
      controls.className = "controls";
      var tapButton = document.createElement("button");
      tapButton.type = "button";
      tapButton.className = "tap";
      tapButton.setAttribute("aria-describedby", "rank-keys-help");
      var up = document.createElement("button");
      up.type = "button";
      up.className = "up";
      up.textContent = "▲";
      up.setAttribute("aria-label", t("up", { image: name }));
      var down = document.createElement("button");
      down.type = "button";
      down.className = "down";
      down.textContent = "▼";
      down.setAttribute("aria-label", t("down", { image: name }));
      controls.appendChild(tapButton);
      controls.appendChild(up);
      controls.appendChild(down);
      li.appendChild(controls);

      tapButton.addEventListener("click", function () { tap(li); keepFocus(tapButton, null); });
      up.addEventListener("click", function () { move(li, -1, ""); keepFocus(up, tapButton); });
      down.addEventListener("click", function () { move(li, 1, ""); keepFocus(down, tapButton); });

      li.addEventListener("keydown", function (ev) {
        /* Alt+Arrow on the image's buttons (the image itself is no tab stop); a select keeps its own keys. */
        if (!ev.altKey || !ev.target.closest || ev.target.tagName !== "BUTTON") { return; }
        var delta = 0;
        if (ev.key === "ArrowUp" || ev.key === "ArrowLeft") { delta = -1; }
        if (ev.key === "ArrowDown" || ev.key === "ArrowRight") { delta = 1; }
        if (!delta) { return; }
        ev.preventDefault();
        var from = ev.target;
        move(li, delta, "");
        keepFocus(from, tapButton);
      });

      select(li).addEventListener("change", function () {
        var sel = select(li);
        var wanted = rankOf(li);
        var old = last.has(sel) ? last.get(sel) : "";
        var note = "";
        if (wanted !== null) {
          var other = holder(wanted, li);
          if (other) {
            select(other).value = old;
            note = old === "" ? "; " + imageName(other) + " is now unranked" : "; " + imageName(other) + " takes rank " + old;
          }
        }
        render();
        keepFocus(sel, null);
        announce(wanted === null
          ? name + " unranked. " + question
          : name + " now has rank " + wanted + note + ". " + question);
      });

      li.addEventListener("dragstart", function (ev) {
        if (skipped()) { ev.preventDefault(); return; }
        dragged = li;
        li.classList.add("dragging");
        if (ev.dataTransfer) { ev.dataTransfer.effectAllowed = "move"; ev.dataTransfer.setData("text/plain", name); }
      });
      li.addEventListener("dragend", function () { li.classList.remove("dragging"); dragged = null; });
      li.addEventListener("dragover", function (ev) {
        if (dragged && dragged !== li && dragged.parentNode === list && rankOf(li) !== null) { ev.preventDefault(); }
      });
      li.addEventListener("drop", function (ev) {
        if (!dragged || dragged === li || dragged.parentNode !== list) { return; }
        ev.preventDefault();
        dropOnto(dragged, li);
      });
    });

    function applySkip() {
      fieldset.classList.toggle("skipped", skipped());
      /* Disabled selects are not submitted: a skipped question sends no ranks. Their values are kept, so
         unticking the box brings the ranks back. */
      items().forEach(function (li) { select(li).disabled = skipped(); });
      render();
    }
    if (skip) {
      skip.addEventListener("change", function () {
        applySkip();
        announce(skipped()
          ? "Question skipped: too distressing to judge. " + question
          : "Question answered again: its ranks can be chosen. " + question);
      });
    }
    applySkip();
    window.addEventListener("pageshow", render);  /* a page restored from history shows the restored selects */
  }

  function zoom() {
    var dialog = document.createElement("dialog");
    dialog.className = "zoom-view";
    var big = document.createElement("img");
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = t("close");
    dialog.appendChild(big);
    dialog.appendChild(close);
    document.body.appendChild(dialog);
    close.addEventListener("click", function () { dialog.close(); });
    dialog.addEventListener("click", function (ev) { if (ev.target === dialog || ev.target === big) { dialog.close(); } });
    Array.prototype.forEach.call(document.querySelectorAll("a.zoom"), function (a) {
      a.addEventListener("click", function (ev) {
        if (typeof dialog.showModal !== "function") { return; }
        ev.preventDefault();
        var img = a.querySelector("img");
        big.src = a.getAttribute("href");
        big.alt = t("enlarged", { image: img ? img.getAttribute("alt") : "" });
        dialog.showModal();
        close.focus();
      });
      a.setAttribute("draggable", "false");
    });
  }

  /* One question at a time: each fieldset is a step with Back / Next question; the submit button shows on the last.
     Every select stays in the one form, so what is sent is what it was without JavaScript. */
  function stepper(form) {
    var steps = Array.prototype.slice.call(form.querySelectorAll("fieldset.criterion"));
    var submit = form.querySelector("button.next");
    /* The "stop and return" link sits in the first step's row (which has no Back button), so no step grows. */
    var leave = document.querySelector(".return-link");
    if (steps.length < 2) { return function () {}; }
    form.classList.add("stepped");
    var current = 0;
    function show(i, focus) {
      current = Math.max(0, Math.min(steps.length - 1, i));
      steps.forEach(function (fs, j) { fs.hidden = j !== current; });
      if (leave && steps[0].querySelector(".step-nav")) {
        steps[0].querySelector(".step-nav").appendChild(leave);
        leave.hidden = current !== 0;
      }
      if (submit) { submit.hidden = current !== steps.length - 1; }
      if (submit && current === steps.length - 1) { steps[current].querySelector(".step-nav").appendChild(submit); }
      if (focus) {
        var legend = steps[current].querySelector("legend");
        steps[current].setAttribute("tabindex", "-1");
        steps[current].focus({ preventScroll: true });
        (legend || steps[current]).scrollIntoView({ block: "nearest" });
        window.scrollTo(0, 0);
      }
    }
    steps.forEach(function (fs, j) {
      var nav = document.createElement("div");
      nav.className = "step-nav";
      var of = document.createElement("span");
      of.className = "step-of";
      of.textContent = t("stepOf", { i: j + 1, n: steps.length });
      var helpRow = fs.querySelector(".help-row");
      if (helpRow) { helpRow.appendChild(of); }
      var clearButton = fs.querySelector("button.reset");
      if (clearButton) { nav.appendChild(clearButton); }
      if (j > 0) {
        var back = document.createElement("button");
        back.type = "button";
        back.className = "back";
        back.textContent = t("back");
        back.setAttribute("aria-label", t("backAria", { i: j, n: steps.length }));
        back.addEventListener("click", function () { show(j - 1, true); });
        nav.appendChild(back);
      }
      if (j < steps.length - 1) {
        var fwd = document.createElement("button");
        fwd.type = "button";
        fwd.className = "forward";
        fwd.textContent = t("nextQuestion");
        fwd.setAttribute("aria-label", t("nextAria", { i: j + 2, n: steps.length }));
        fwd.addEventListener("click", function () { show(j + 1, true); });
        nav.appendChild(fwd);
      }
      fs.appendChild(nav);
    });
    var invalid = steps.findIndex(function (fs) { return fs.classList.contains("invalid"); });
    show(invalid < 0 ? 0 : invalid, false);
    return function (el) {  /* show the step holding el */
      var at = steps.findIndex(function (fs) { return fs.contains(el); });
      if (at >= 0) { show(at, false); }
    };
  }

  /* The error summary: focus it so that it is read first, and let its links take focus into the question. */
  function errorSummary(reveal) {
    var summary = document.getElementById("error-summary");
    if (!summary) { return; }
    Array.prototype.forEach.call(summary.querySelectorAll("a[href^='#']"), function (a) {
      a.addEventListener("click", function (ev) {
        var target = document.getElementById(a.getAttribute("href").slice(1));
        if (!target) { return; }
        ev.preventDefault();
        reveal(target);
        var legend = target.querySelector("legend") || target;
        legend.scrollIntoView({ block: "start" });
        var control = target.querySelector("select:not([disabled])") || target.querySelector("input, button");
        var empty = Array.prototype.filter.call(target.querySelectorAll("select:not([disabled])"), function (s) {
          return s.value === "";
        })[0];
        control = empty || control;
        if (control) { control.focus({ preventScroll: true }); }
      });
    });
    summary.focus();
  }

  var form = document.querySelector("form.ranking");
  if (!form) { return; }
  var help = document.createElement("p");
  help.id = "rank-keys-help";
  help.className = "keys-help";
  help.textContent = t("keys");
  var firstQuestion = form.querySelector("fieldset.criterion");
  form.insertBefore(help, firstQuestion || form.firstChild);
  Array.prototype.forEach.call(form.querySelectorAll("fieldset.criterion"), setup);
  zoom();
  errorSummary(stepper(form));
  form.addEventListener("submit", function () {
    var button = form.querySelector("button.next");
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });
  window.addEventListener("pageshow", function () {
    var button = form.querySelector("button.next");
    if (button) { button.disabled = false; }
  });
}());
