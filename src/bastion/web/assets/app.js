// Bastion's page: create a secret (optionally encrypted in this browser) and reveal one on a click.
// No framework and no third-party code; the DOM is only touched through textContent, value and hidden,
// which is what the page's Content-Security-Policy (Trusted Types, no inline code) allows.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SECRET_ID = /^[A-Za-z0-9_-]{22}$/;

  const b64url = {
    encode(bytes) {
      let text = "";
      for (let i = 0; i < bytes.length; i += 1) text += String.fromCharCode(bytes[i]);
      return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
    decode(text) {
      const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
      return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    },
  };

  // --- the browser's half of client-side encryption: AES-256-GCM, key in the URL fragment -------------

  async function seal(text) {
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt", "decrypt"]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(text)));
    const joined = new Uint8Array(iv.length + sealed.length);
    joined.set(iv);
    joined.set(sealed, iv.length);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", key));
    return { ciphertext: b64url.encode(joined), key: b64url.encode(raw) };
  }

  async function importKey(keyText) {
    const raw = b64url.decode(keyText);
    if (raw.length !== 32) throw new Error("bad key length");
    return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["decrypt"]);
  }

  async function unseal(ciphertext, key) {
    const data = b64url.decode(ciphertext);
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: data.slice(0, 12) }, key, data.slice(12));
    return new TextDecoder().decode(plain);
  }

  // --- talking to the API -------------------------------------------------------------------------

  async function api(method, path, body, headers) {
    const init = { method, headers: { Accept: "application/json", ...(headers || {}) }, cache: "no-store",
                   credentials: "same-origin", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (_) { data = null; }
    }
    return { status: response.status, ok: response.ok, data, retryAfter: response.headers.get("Retry-After") };
  }

  function problem(result) {
    const detail = result.data && result.data.detail;
    if (result.status === 429) {
      const wait = result.retryAfter ? ` Try again in ${waitText(Number(result.retryAfter))}.` : "";
      return (detail || "Too many requests right now.") + wait;
    }
    return detail || `Something went wrong (HTTP ${result.status}). Please try again.`;
  }

  // --- small helpers ------------------------------------------------------------------------------

  function setStatus(element, text, kind) {
    element.textContent = text;
    element.classList.toggle("error", kind === "error");
    element.classList.toggle("ok", kind === "ok");
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const waitText = (seconds) => seconds >= 120 ? plural(Math.ceil(seconds / 60), "minute") : plural(seconds, "second");

  function newIdempotencyKey() {
    return crypto.randomUUID ? crypto.randomUUID() : b64url.encode(crypto.getRandomValues(new Uint8Array(16)));
  }

  function wireCopyButtons(status) {
    for (const button of document.querySelectorAll("button[data-copy]")) {
      const label = button.textContent;
      button.addEventListener("click", async () => {
        const field = $(button.dataset.copy);
        try {
          await navigator.clipboard.writeText(field.value);
        } catch (_) {
          field.focus();
          field.select();
          document.execCommand("copy"); // older browsers, and pages without clipboard permission
        }
        button.textContent = "Copied";
        if (status) setStatus(status, "Copied to the clipboard.", "ok");
        setTimeout(() => { button.textContent = label; }, 2000);
      });
    }
  }

  // --- the create page (/) -------------------------------------------------------------------------

  function initCreate() {
    const form = $("create-form");
    const status = $("create-status");
    const submit = $("create");
    const encrypt = $("client-encrypt");
    if (!(window.crypto && crypto.subtle)) {
      encrypt.checked = false;
      encrypt.disabled = true;
      $("encrypt-hint").textContent = "This browser cannot encrypt here (the page must be served over HTTPS), " +
        "so the server encrypts the secret instead.";
    }
    // A request that failed on the network is retried with the same body and Idempotency-Key, so that a
    // retry can never create a second secret; any edit of the form starts afresh.
    let pending = null;
    let created = null;
    form.addEventListener("input", () => { pending = null; });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = $("secret").value;
      const views = Number($("views").value);
      if (!text) { setStatus(status, "Write the secret first.", "error"); $("secret").focus(); return; }
      if (!Number.isInteger(views) || views < 1 || views > Number($("views").max)) {
        setStatus(status, `Views allowed must be a whole number from 1 to ${$("views").max}.`, "error");
        $("views").focus();
        return;
      }
      submit.disabled = true;
      setStatus(status, "Creating the link…");
      try {
        if (pending === null) pending = await prepare(text, views, encrypt.checked);
        const result = await api("POST", "/api/secrets", pending.body, { "Idempotency-Key": pending.key });
        const fragment = pending.fragment;
        pending = null;
        if (!result.ok) { setStatus(status, problem(result), "error"); return; }
        created = result.data;
        showResult(created, fragment);
      } catch (_) {
        setStatus(status, "Could not reach the server. Check the connection and try again.", "error");
      } finally {
        submit.disabled = false;
      }
    });

    async function prepare(text, views, inBrowser) {
      const body = { ttl_seconds: Number($("ttl").value), max_views: views };
      const passphrase = $("passphrase").value;
      if (passphrase) body.passphrase = passphrase;
      let fragment = "";
      if (inBrowser) {
        const sealed = await seal(text);
        body.secret = sealed.ciphertext;
        body.client_encrypted = true;
        fragment = "#" + sealed.key;
      } else {
        body.secret = text;
      }
      return { body, fragment, key: newIdempotencyKey() };
    }

    function showResult(secret, fragment) {
      $("link").value = secret.url + fragment;
      $("delete-token").value = secret.delete_token;
      $("result-summary").textContent = `It can be opened ${plural(secret.views_remaining, "time")} and ` +
        `expires ${when(secret.expires_at)}.`;
      setStatus(status, "");
      setStatus($("result-status"), "");
      $("burn").disabled = false;
      form.reset();
      form.hidden = true;
      $("result").hidden = false;
      $("result-title").focus();
    }

    $("burn").addEventListener("click", async () => {
      const resultStatus = $("result-status");
      try {
        const result = await api("DELETE", "/api/secrets/" + created.id, undefined,
                                 { "X-Delete-Token": created.delete_token });
        if (result.status === 204) {
          setStatus(resultStatus, "Burned: the link no longer works.", "ok");
          $("burn").disabled = true;
        } else if (result.status === 404) {
          setStatus(resultStatus, "It is already gone: viewed, expired or burned.", "error");
        } else {
          setStatus(resultStatus, problem(result), "error");
        }
      } catch (_) {
        setStatus(resultStatus, "Could not reach the server. Try again.", "error");
      }
    });

    $("another").addEventListener("click", () => {
      created = null;
      $("link").value = "";
      $("delete-token").value = "";
      $("result").hidden = true;
      form.hidden = false;
      $("secret").focus();
    });
    wireCopyButtons($("result-status"));
  }

  // --- the reveal page (/s/<id>) -------------------------------------------------------------------

  function showGone(reason) {
    $("checking").hidden = true;
    $("waiting").hidden = true;
    $("revealed").hidden = true;
    if (reason) $("gone-reason").textContent = reason;
    $("gone").hidden = false;
    $("gone-title").focus();
  }

  async function initReveal() {
    const id = location.pathname.split("/").pop() || "";
    const keyText = location.hash.length > 1 ? location.hash.slice(1) : null;
    if (!SECRET_ID.test(id)) { showGone(); return; }
    let meta;
    try {
      meta = await api("GET", "/api/secrets/" + id); // metadata only: this never uses up a view
    } catch (_) {
      setStatus($("checking"), "Could not reach the server. Reload the page to try again.", "error");
      return;
    }
    if (meta.status === 404) { showGone(); return; }
    if (!meta.ok) { setStatus($("checking"), problem(meta), "error"); return; }
    const info = meta.data;
    let key = null;
    if (info.client_encrypted) {
      // Check the key before anything is consumed: a cut-off link must not burn the secret.
      try {
        key = await importKey(keyText || "");
      } catch (_) {
        showGone("This link is incomplete: the part after “#” holds the key that decrypts the secret. " +
                 "Ask the sender to copy the whole link. Nothing has been used up.");
        return;
      }
    }
    $("checking").hidden = true;
    $("waiting").hidden = false;
    $("waiting-summary").textContent = `It can be revealed ${plural(info.views_remaining, "more time")} and ` +
      `expires ${when(info.expires_at)}.` + (info.requires_passphrase ? " It is protected by a passphrase." : "");
    if (info.requires_passphrase) $("passphrase-field").hidden = false;
    $("reveal-form").addEventListener("submit", (event) => {
      event.preventDefault();
      reveal(id, info, key);
    });
    wireCopyButtons(null);
  }

  async function reveal(id, info, key) {
    const status = $("reveal-status");
    const button = $("reveal");
    const body = {};
    if (info.requires_passphrase) {
      body.passphrase = $("passphrase").value;
      if (!body.passphrase) { setStatus(status, "Enter the passphrase first.", "error"); $("passphrase").focus(); return; }
    }
    button.disabled = true;
    setStatus(status, "Revealing…");
    let result;
    try {
      result = await api("POST", `/api/secrets/${id}/reveal`, body);
    } catch (_) {
      setStatus(status, "Could not reach the server. Try again.", "error");
      button.disabled = false;
      return;
    }
    if (result.status === 404) { showGone(); return; }
    if (!result.ok) {
      const left = result.data && result.data.attempts_left;
      const note = Number.isInteger(left) ? ` ${plural(left, "attempt")} left before a 30-minute lock.` : "";
      setStatus(status, problem(result) + note, "error");
      button.disabled = false;
      if (info.requires_passphrase) $("passphrase").focus();
      return;
    }
    let text = result.data.secret;
    if (result.data.client_encrypted) {
      try {
        text = await unseal(text, key);
      } catch (_) {
        showGone("The secret was fetched but could not be decrypted with this link's key, and that view is " +
                 "used up. Ask the sender for a new link.");
        return;
      }
    }
    // Drop the key from the address bar and the history: nothing is left to open with it here.
    history.replaceState(null, "", location.pathname);
    $("waiting").hidden = true;
    $("secret-out").value = text;
    $("revealed-note").textContent = result.data.views_remaining === 0
      ? "That was the last view: the secret is now deleted from the server. Copy it before you leave this page."
      : `It can be revealed ${plural(result.data.views_remaining, "more time")} with the original link.`;
    $("revealed").hidden = false;
    $("revealed-title").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "create") initCreate();
    else if (page === "reveal") initReveal();
  });
})();
