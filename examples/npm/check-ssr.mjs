// Importing the package where there is no DOM (server-side rendering, Node)
// must not throw; init() must refuse clearly instead.
import { AgentAssist } from "agent-assist";
import { readdirSync } from "node:fs";

try {
  await AgentAssist.init({ siteKey: "demo" });
  console.error("init() succeeded without a DOM");
  process.exit(1);
} catch (err) {
  if (err.code !== "no_document") {
    console.error("unexpected error from init() without a DOM:", err);
    process.exit(1);
  }
}

// The Vite build emitted the wasm as an asset next to the bundle.
const assets = readdirSync(new URL("./dist/assets/", import.meta.url));
if (!assets.some((f) => f.endsWith(".wasm")) || !assets.some((f) => f.endsWith(".js"))) {
  console.error("the Vite build has no .wasm/.js asset:", assets);
  process.exit(1);
}
console.log("imported under Node without a DOM; Vite bundle has", assets.join(", "));
