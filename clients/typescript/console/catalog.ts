// What the console's bundle has instead of the generated catalog (see build.mjs): the
// protocol's close codes, which the client needs, and no catalog. With an empty version the
// client reports every server's catalog as another one, which the console shows rather than
// warns about.

export { CloseCode } from "../src/catalog.js";

export const CATALOG_VERSION = "";
