import { defineConfig } from "vite";

// Served by the ingress at /console (ingress/src/console.rs), under a
// Content-Security-Policy that allows this origin's scripts and styles
// only: no inline script, no eval.
export default defineConfig({
  base: "/console/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    // One small bundle; no inline module preload polyfill.
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
  },
});
