// Generates dashboard.schema.json (JSON Schema draft-07) from the TypeScript
// types shipped in @grafana/schema, then applies two small patches.
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createGenerator } from "ts-json-schema-generator";

const require = createRequire(import.meta.url);
const typesPath = require.resolve("@grafana/schema/package.json")
  .replace(/package\.json$/, "dist/types/raw/dashboard/x/types.gen.d.ts");

const schema = createGenerator({ path: typesPath, type: "Dashboard", skipTypeCheck: true })
  .createSchema("Dashboard");
const defs = schema.definitions;

// 1. grafana-foundation-sdk emits interval-variable fields on every variable.
Object.assign(defs.VariableModel.properties, {
  auto: { type: "boolean" }, auto_count: { type: "number" }, auto_min: { type: "string" },
});
// 2. panels[]: pick Panel vs RowPanel by "type" instead of anyOf (readable errors).
defs.Dashboard.properties.panels.items = {
  if: { properties: { type: { const: "row" } }, required: ["type"] },
  then: { $ref: "#/definitions/RowPanel" },
  else: { $ref: "#/definitions/Panel" },
};

writeFileSync("../dashboard.schema.json", JSON.stringify(schema, null, 2) + "\n");
console.log(`wrote ../dashboard.schema.json (${Object.keys(defs).length} definitions) from ${typesPath}`);
