// Typesets the math that pymdownx.arithmatex marked (generic mode: \( \) inline in a span,
// \[ \] in a div, class "arithmatex") with the KaTeX files that ship inside the site.
document.addEventListener("DOMContentLoaded", function () {
  for (const element of document.querySelectorAll(".arithmatex")) {
    const display = element.tagName === "DIV";
    const tex = element.textContent.trim().slice(2, -2);  // drop \( \) or \[ \]
    katex.render(tex, element, { displayMode: display, throwOnError: false });
  }
});
