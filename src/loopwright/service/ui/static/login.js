// loopwright UI: the login page. The token is posted once to /ui/session, which answers with an
// httpOnly session cookie; the page keeps no copy of the token.
"use strict";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  try {
    await lw.login(field.value.trim());
    field.value = "";
    const me = await lw.api("GET", "/v1/me");
    const project = lw.project(me);
    if (!project && me.admin) {
      location.href = "/ui/admin"; // a fresh server: the admin creates the first project
      return;
    }
    if (!project) throw new Error("You are not a member of any project yet; ask your lead.");
    localStorage.setItem("loopwright.project", project);
    location.href = `/ui/${lw.firstPage(me.projects[project])}`;
  } catch (e) {
    lw.showError(e.status === 401 ? "That token is not valid." : e.message);
  }
});
