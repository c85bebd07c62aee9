// Validates an AsyncAPI document with the reference parser: prints every diagnostic and exits 1
// when one is an error (or the document cannot be parsed at all).
//   node scripts/validate-asyncapi.mjs ../../generated-docs/asyncapi.yaml

import { readFile } from "node:fs/promises";

import { Parser } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: validate-asyncapi.mjs <asyncapi.yaml>");
  process.exit(2);
}
const severities = ["error", "warning", "information", "hint"];
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"));
for (const d of diagnostics) {
  console.log(`${severities[d.severity] ?? d.severity} ${d.code} at ${d.path.join(".")}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (document === undefined || errors.length > 0) {
  console.log(`invalid: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(
  `valid: ${document.channels().length} channels, ${document.operations().length} operations, ${document.messages().length} messages, ${diagnostics.length} diagnostic(s) below error`,
);
