import { defineConfig } from "vite";

export default defineConfig({
  // The package loads its .wasm with `new URL(…, import.meta.url)`; keep it
  // out of dependency pre-bundling so that URL still points at the file.
  optimizeDeps: { exclude: ["agent-assist"] },
  build: { target: "es2022" },
});
