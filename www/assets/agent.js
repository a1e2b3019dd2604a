// The agent console page: loads the console's wasm module (wasm-bindgen's
// `--target web` glue, served by the broker from pkg/dist/console/) and
// renders it. The glue finds its .wasm next to itself (import.meta.url).
import init, { start } from "/sdk/console/agent_console.js";

const root = document.getElementById("agent-console");
try {
  await init();
  start(root);
} catch (err) {
  const p = document.createElement("p");
  p.className = "boot";
  p.setAttribute("role", "alert");
  p.textContent = "The agent console could not load. Reload the page to try again.";
  root.replaceChildren(p);
  console.error(err);
}
