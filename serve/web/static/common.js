// Helpers shared by the pages (plain browser JavaScript, no build step).
"use strict";

// api fetches a JSON endpoint; a non-2xx answer throws its {"error": ...}.
async function api(url, opts) {
  const r = await fetch(url, opts);
  let j = null;
  try { j = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error((j && j.error) || (r.status + " " + r.statusText));
  return j;
}

// el builds an element: el("img", {src: u, class: "x"}, child...).
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}

function showError(msg) {
  const e = document.getElementById("error");
  if (!e) return;
  e.textContent = msg || "";
  e.hidden = !msg;
}

// setupDrop calls onFile with a file chosen in input or dropped on zone.
function setupDrop(zone, input, onFile) {
  input.addEventListener("change", () => { if (input.files[0]) onFile(input.files[0]); });
  zone.addEventListener("dragover", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const f = ev.dataTransfer.files[0];
    if (f) onFile(f);
  });
}

function imageURL(set, id, max) {
  return "/api/images/" + encodeURIComponent(set) + "/" + id + (max ? "?max=" + max : "");
}
