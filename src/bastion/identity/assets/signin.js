// The sign-in page: posts the form to /auth/login (cookie mode, same origin) and goes back to `next`
// (a local path the server checked). No inline code: the page's CSP allows only this file.
"use strict";
(function () {
  var form = document.getElementById("signin");
  var error = document.getElementById("error");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    error.hidden = true;
    var data = new FormData(form);
    fetch("/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: data.get("email"), password: data.get("password"), mode: "cookie" }),
    })
      .then(function (response) {
        if (response.ok) {
          window.location.replace(form.dataset.next || "/");
          return;
        }
        return response.json().then(function (problem) {
          error.textContent = problem.detail || problem.title || "Sign-in failed.";
          error.hidden = false;
        });
      })
      .catch(function () {
        error.textContent = "Bastion could not be reached; try again.";
        error.hidden = false;
      });
  });
})();
