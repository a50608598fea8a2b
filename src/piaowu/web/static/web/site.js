// Small progressive enhancements; every page works without them.
document.documentElement.classList.add("js");

// Selects marked data-autosubmit (city, language) submit their form on change.
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form?.requestSubmit());
}

// Close the account menu when tapping elsewhere or pressing Escape.
const menus = document.querySelectorAll("details.account-menu");
document.addEventListener("click", (event) => {
  for (const menu of menus) {
    if (menu.open && !menu.contains(event.target)) menu.open = false;
  }
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of menus) {
    if (menu.open) {
      menu.open = false;
      menu.querySelector("summary")?.focus();
    }
  }
});
