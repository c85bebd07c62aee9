// Why a WebSocket handshake failed. WebSocket APIs hide the HTTP answer, so the same URL is asked
// over HTTP: the server checks the token before the upgrade and says why.

import type { ClientOptions } from "./types.js";

/** The server's answer to the handshake's URL, or `undefined` when it could not be had. */
export interface HandshakeAnswer {
  status: number;
  body: { error?: string; message?: string };
  /** `Retry-After`, in seconds, when the server sent one. */
  retryAfter: number | undefined;
}

export async function askWhy(fetcher: NonNullable<ClientOptions["fetch"]>, url: string): Promise<HandshakeAnswer | undefined> {
  try {
    const response = await fetcher(url.replace(/^ws/, "http"));
    let body: HandshakeAnswer["body"];
    try {
      body = JSON.parse(await response.text()) as HandshakeAnswer["body"];
    } catch {
      body = {};
    }
    return { status: response.status, body, retryAfter: Number(response.headers.get("retry-after")) || undefined };
  } catch {
    // Unreachable, or the answer cannot be read.
    return undefined;
  }
}

/** When to refresh a token whose rights end at `expiresAt` (ms since the Unix epoch): a fifth of
 * what is left before, at most a minute before. Returns the delay from now, in ms. */
export function refreshDelay(expiresAt: number, now = Date.now()): number {
  const left = Math.max(expiresAt - now, 0);
  return left - Math.min(left / 5, 60_000);
}
