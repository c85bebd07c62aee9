// `npm run size`: the client's JavaScript as an application ships it, minified and gzipped
// (React left out: the application has it already). "Every export" keeps all of it, the
// examples included; an application importing what it uses gets the rest tree-shaken away.

import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
const shapes: [string, string][] = [
  ["@omnicast/client, every export", `export * from "./index.js";`],
  ["an application using createClient", `import { createClient } from "./index.js"; createClient({ url: "ws://x/ws" }).connect();`],
  [
    "an application using createClient and the React hooks",
    `import { createClient } from "./index.js"; import * as hooks from "./react.js"; console.log(createClient, hooks);`,
  ],
];
for (const [name, contents] of shapes) {
  const result = await build({
    stdin: { contents, resolveDir: dist, loader: "js" },
    bundle: true,
    minify: true,
    write: false,
    format: "esm",
    external: ["react"],
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  console.log(`${name}: ${code.length} bytes minified, ${gzipSync(code, { level: 9 }).length} gzipped`);
}
