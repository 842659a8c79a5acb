/* Ranking page enhancements. The <select> boxes stay the single source of truth: every gesture here
   (tap-to-rank, drag, Alt+Arrow keys, move buttons) only reorders the list and sets those selects. */
(function () {
  "use strict";

  var live = document.getElementById("rank-status");

  function announce(message) {
    if (live) { live.textContent = message; }
  }

  function imageName(li) {
    var img = li.querySelector("img");
    return img ? img.getAttribute("alt") : "Image";
  }

  function setup(fieldset) {
    var list = fieldset.querySelector("ol.items");
    if (!list) { return; }
    var legend = fieldset.querySelector("legend");
    var question = legend ? legend.textContent.trim() : "";
    var tapped = 0;
    var dragged = null;
    fieldset.classList.add("enhanced");

    function items() { return Array.prototype.slice.call(list.querySelectorAll(":scope > li.item")); }
    function select(li) { return li.querySelector("select"); }

    var tapHelp = document.createElement("p");
    tapHelp.className = "tap-help";
    var reset = document.createElement("button");
    reset.type = "button";
    reset.className = "reset";
    reset.textContent = "Start tapping again";
    reset.addEventListener("click", function () { tapped = 0; refresh(); announce("Tap order cleared. Next tap is rank 1."); });
    list.parentNode.insertBefore(tapHelp, list);

    function refresh() {
      var all = items();
      all.forEach(function (li, i) {
        select(li).value = String(i + 1);
        li.querySelector(".rank-badge").textContent = String(i + 1);
        li.classList.toggle("tapped", i < tapped);
        li.querySelector(".up").disabled = i === 0;
        li.querySelector(".down").disabled = i === all.length - 1;
      });
      tapHelp.textContent = tapped < all.length
        ? "Tap “Rank next” on the images in order from best to worst, drag them, or use the arrows. Next tap: rank " + (tapped + 1) + "."
        : "All images ranked. Tap again to change.";
      if (tapped > 0 && !reset.parentNode) { tapHelp.appendChild(reset); }
    }

    function moveTo(li, index, how) {
      var all = items();
      var from = all.indexOf(li);
      index = Math.max(0, Math.min(all.length - 1, index));
      if (from !== index) {
        all.splice(from, 1);
        all.splice(index, 0, li);
        all.forEach(function (el) { list.appendChild(el); });
      }
      refresh();
      announce(imageName(li) + " moved to rank " + (index + 1) + " of " + all.length + (how ? " (" + how + ")" : "") + ". " + question);
    }

    function orderFromSelects() {
      var all = items();
      all.sort(function (a, b) { return Number(select(a).value) - Number(select(b).value); });
      all.forEach(function (el) { list.appendChild(el); });
    }

    items().forEach(function (li) {
      var name = imageName(li);
      li.tabIndex = 0;
      li.draggable = true;
      li.setAttribute("aria-describedby", "rank-keys-help");

      var badge = document.createElement("span");
      badge.className = "rank-badge";
      badge.setAttribute("aria-hidden", "true");
      li.insertBefore(badge, li.firstChild);

      var controls = document.createElement("div");
      controls.className = "controls";
      var tap = document.createElement("button");
      tap.type = "button";
      tap.className = "tap";
      tap.textContent = "Rank next";
      tap.setAttribute("aria-label", "Rank " + name + " next");
      var up = document.createElement("button");
      up.type = "button";
      up.className = "up";
      up.textContent = "▲";
      up.setAttribute("aria-label", "Move " + name + " up (better rank)");
      var down = document.createElement("button");
      down.type = "button";
      down.className = "down";
      down.textContent = "▼";
      down.setAttribute("aria-label", "Move " + name + " down (worse rank)");
      controls.appendChild(tap);
      controls.appendChild(up);
      controls.appendChild(down);
      li.appendChild(controls);

      tap.addEventListener("click", function () {
        var all = items();
        if (tapped >= all.length) { tapped = 0; }
        var at = all.indexOf(li);
        if (at < tapped) { announce(name + " already has rank " + (at + 1) + "."); return; }
        var target = tapped;
        tapped += 1;
        if (tapped === all.length - 1) { tapped = all.length; }  /* the last image's rank follows */
        moveTo(li, target, "tap");
      });
      up.addEventListener("click", function () { moveTo(li, items().indexOf(li) - 1, ""); up.focus(); });
      down.addEventListener("click", function () { moveTo(li, items().indexOf(li) + 1, ""); down.focus(); });

      li.addEventListener("keydown", function (ev) {
        if (!ev.altKey || ev.target !== li) { return; }
        if (ev.key === "ArrowUp" || ev.key === "ArrowLeft") {
          ev.preventDefault();
          moveTo(li, items().indexOf(li) - 1, "");
          li.focus();
        } else if (ev.key === "ArrowDown" || ev.key === "ArrowRight") {
          ev.preventDefault();
          moveTo(li, items().indexOf(li) + 1, "");
          li.focus();
        }
      });

      select(li).addEventListener("change", function () {
        var wanted = Number(select(li).value);
        var all = items();
        var old = all.indexOf(li) + 1;
        all.forEach(function (other) {
          if (other !== li && Number(select(other).value) === wanted) { select(other).value = String(old); }
        });
        orderFromSelects();
        refresh();
        announce(name + " now has rank " + wanted + ". " + question);
      });

      li.addEventListener("dragstart", function (ev) {
        dragged = li;
        li.classList.add("dragging");
        if (ev.dataTransfer) { ev.dataTransfer.effectAllowed = "move"; ev.dataTransfer.setData("text/plain", name); }
      });
      li.addEventListener("dragend", function () { li.classList.remove("dragging"); dragged = null; });
      li.addEventListener("dragover", function (ev) {
        if (dragged && dragged !== li && dragged.parentNode === list) { ev.preventDefault(); }
      });
      li.addEventListener("drop", function (ev) {
        if (!dragged || dragged === li || dragged.parentNode !== list) { return; }
        ev.preventDefault();
        moveTo(dragged, items().indexOf(li), "drag");
      });
    });

    var skip = fieldset.querySelector(".skip input[type=checkbox]");
    if (skip) {
      var toggle = function () {
        fieldset.classList.toggle("skipped", skip.checked);
        items().forEach(function (li) { select(li).disabled = skip.checked; });
      };
      skip.addEventListener("change", function () {
        toggle();
        announce(skip.checked ? "Question skipped: too distressing to judge." : "Question answered again.");
      });
      toggle();
    }
    orderFromSelects();
    refresh();
  }

  function zoom() {
    var dialog = document.createElement("dialog");
    dialog.className = "zoom-view";
    var big = document.createElement("img");
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
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
        big.alt = (img ? img.getAttribute("alt") : "Image") + ", enlarged";
        dialog.showModal();
        close.focus();
      });
      a.setAttribute("draggable", "false");
    });
  }

  var form = document.querySelector("form.ranking");
  if (!form) { return; }
  var help = document.createElement("p");
  help.id = "rank-keys-help";
  help.className = "keys-help";
  help.textContent = "To reorder with the keyboard, focus an image and press Alt with the up or down arrow.";
  form.insertBefore(help, form.firstChild.nextSibling);
  Array.prototype.forEach.call(form.querySelectorAll("fieldset.criterion"), setup);
  zoom();
  form.addEventListener("submit", function () {
    var button = form.querySelector("button.next");
    if (button) { setTimeout(function () { button.disabled = true; }, 0); }
  });
  window.addEventListener("pageshow", function () {
    var button = form.querySelector("button.next");
    if (button) { button.disabled = false; }
  });
}());
