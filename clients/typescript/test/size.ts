// `npm run size`: the client's JavaScript as an application ships it, minified and gzipped
// (React left out: the application has it already).

import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

for (const entry of ["index", "react"]) {
  const result = await build({
    entryPoints: [fileURLToPath(new URL(`../../dist/${entry}.js`, import.meta.url))],
    bundle: true,
    minify: true,
    write: false,
    format: "esm",
    external: ["react"],
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  console.log(`@omnicast/client${entry === "index" ? "" : "/react"}: ${code.length} bytes minified, ${gzipSync(code).length} gzipped`);
}
