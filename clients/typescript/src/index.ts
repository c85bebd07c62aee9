// @omnicast/client: the typed client of an omnicast server. React hooks: `@omnicast/client/react`.

export * from "./catalog.js";
export { createClient } from "./client.js";
export {
  type CatalogMismatch,
  type ClientError,
  type ClientOptions,
  type Handler,
  type HeartbeatOptions,
  type Listen,
  type OmnicastClient,
  type ReconnectOptions,
  type Recovery,
  type Status,
  type TypesWithPayload,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";
