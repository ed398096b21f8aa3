// Passgate's passkey ceremonies in the browser: sign-in (button and autofill), first-run setup,
// signup, and adding a passkey on the account page. Talks only to /api/webauthn/* on this origin.
(() => {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const errorBox = document.getElementById("passkey-error");

  const MESSAGES = {
    NotAllowedError: "The passkey prompt was cancelled or timed out. Try again when you are ready.",
    InvalidStateError: "This passkey is already registered here.",
    SecurityError: "Passkeys need this site's own address over HTTPS (or localhost).",
    NotSupportedError: "This browser or device cannot use passkeys.",
  };

  function showError(message) {
    if (!errorBox) return;
    errorBox.textContent = message;
    errorBox.hidden = false;
    errorBox.focus?.();
  }

  function clearError() {
    if (errorBox) errorBox.hidden = true;
  }

  function fromB64url(value) {
    const base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  class ServerError extends Error {}

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ServerError(data.message || `Request failed (${response.status}).`);
    return data;
  }

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: fromB64url(json.challenge),
      user: { ...json.user, id: fromB64url(json.user.id) },
      excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
    };
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return {
      ...json,
      challenge: fromB64url(json.challenge),
      allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
    };
  }

  function credentialJSON(credential) {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      if (r.userHandle) response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment,
    };
  }

  function explain(error) {
    if (error instanceof ServerError) return error.message;
    return MESSAGES[error.name] || "Something went wrong with the passkey. Please try again.";
  }

  async function signIn(rd, mediation, signal) {
    const options = await post("/api/webauthn/login/begin");
    let credential;
    try {
      credential = await navigator.credentials.get({
        publicKey: requestOptions(options),
        mediation,
        signal,
      });
    } catch (error) {
      // Cancelled or timed out: end the ceremony so the audit log shows the attempt.
      if (error.name === "NotAllowedError") post("/api/webauthn/login/cancel").catch(() => {});
      throw error;
    }
    const result = await post("/api/webauthn/login/finish", { credential: credentialJSON(credential), rd });
    window.location.assign(result.redirect);
  }

  async function register(begin, rd) {
    const options = await post("/api/webauthn/register/begin", begin);
    const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    const result = await post("/api/webauthn/register/finish", {
      credential: credentialJSON(credential),
      name: "",
      rd,
    });
    window.location.assign(result.redirect);
  }

  function busy(form, on) {
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = on;
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  function guard(form, action) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError();
      busy(form, true);
      try {
        await action();
      } catch (error) {
        if (error.name !== "AbortError") showError(explain(error));
      } finally {
        busy(form, false);
      }
    });
  }

  if (!window.PublicKeyCredential) {
    showError(MESSAGES.NotSupportedError);
    return;
  }

  const login = document.getElementById("passkey-login");
  if (login) {
    const rd = login.dataset.rd || null;
    let autofill = null;
    guard(login, async () => {
      autofill?.abort();
      await signIn(rd, "optional");
    });
    // Browser autofill (conditional mediation): passkeys offered in the username field.
    PublicKeyCredential.isConditionalMediationAvailable?.().then((available) => {
      if (!available) return;
      autofill = new AbortController();
      signIn(rd, "conditional", autofill.signal).catch((error) => {
        if (error.name !== "AbortError") showError(explain(error));
      });
    });
  }

  const enrol = document.getElementById("passkey-enrol");
  if (enrol) {
    guard(enrol, () =>
      register(
        {
          flow: enrol.dataset.flow,
          token: enrol.dataset.token || null,
          username: enrol.elements.username.value,
          email: enrol.elements.email.value,
          display_name: enrol.elements.display_name.value,
        },
        null,
      ),
    );
  }

  const add = document.getElementById("passkey-add");
  if (add) guard(add, () => register({ flow: "add" }, null));
})();
