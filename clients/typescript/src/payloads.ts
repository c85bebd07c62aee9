// Payloads as the catalog describes them (`FIELDS`, generated from events.yaml): checked before
// they leave the process, and completed with their computed fields by the same formulas as the
// server's (`runtime/src/event.rs`, `percent_change`; the derive's checked subtraction).

import type { EventType, TypeSpec } from "./catalog.js";
import { FIELDS, ROLES } from "./catalog.js";

/** Why `data` is not a payload of `type` (its computed fields aside), or `undefined`. */
export function check(type: EventType, data: unknown): string | undefined {
  const fields = FIELDS[type];
  if (fields === undefined) return `\`${String(type)}\` is not an event type of the catalog`;
  if (typeof data !== "object" || data === null || Array.isArray(data)) return "the payload must be an object";
  const payload = data as Record<string, unknown>;
  for (const key of Object.keys(payload)) {
    const field = fields.find((f) => f.name === key);
    if (!field) return `unknown field \`${key}\` (fields: ${fields.map((f) => f.name).join(", ")})`;
  }
  for (const field of fields) {
    const value = payload[field.name];
    if (field.computed) continue; // filled in by `complete`
    if (value === undefined || value === null) {
      if (field.optional) continue;
      return `missing field \`${field.name}\``;
    }
    const problem = checkValue(field.type, value);
    if (problem) return `\`${field.name}\` ${problem}`;
  }
  return undefined;
}

function checkValue(type: TypeSpec, value: unknown): string | undefined {
  if (typeof type === "object" && "list" in type) {
    if (!Array.isArray(value)) return "must be a list";
    for (const [i, item] of value.entries()) {
      const problem = checkValue(type.list, item);
      if (problem) return `[${i}] ${problem}`;
    }
    return undefined;
  }
  if (typeof type === "object") {
    return typeof value === "string" && type.enum.includes(value) ? undefined : `must be one of ${type.enum.join(", ")}`;
  }
  switch (type) {
    case "string":
      return typeof value === "string" ? undefined : "must be a string";
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? undefined : "must be a finite number";
    case "integer":
      return Number.isSafeInteger(value) ? undefined : "must be a whole number";
    case "timestamp":
      return Number.isSafeInteger(value) && (value as number) >= 0 ? undefined : "must be milliseconds since the Unix epoch (a whole number)";
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be true or false";
    case "role":
      return typeof value === "string" && (ROLES as readonly string[]).includes(value) ? undefined : `must be a role (${ROLES.join(", ")})`;
  }
}

/** `data` with its computed fields filled in, or why they cannot be (a result JSON cannot carry). */
export function complete(type: EventType, data: Record<string, unknown>): Record<string, unknown> | string {
  const out: Record<string, unknown> = { ...data };
  for (const field of FIELDS[type]) {
    const formula = field.computed;
    if (!formula) continue;
    if ("difference" in formula) {
      const [minuend, subtrahend] = formula.difference;
      const value = (data[minuend] as number) - (data[subtrahend] as number);
      if (!Number.isSafeInteger(value)) return `\`${field.name}\` (${minuend} - ${subtrahend}) is out of range`;
      out[field.name] = value;
    } else {
      const [from, to] = formula.percentChange;
      const value = percentChange(data[from] as number, data[to] as number);
      if (value === undefined) return `\`${field.name}\` (percent_change(${from}, ${to})) is not a finite number`;
      out[field.name] = value;
    }
  }
  return out;
}

/** The change from `from` to `to` in percent, rounded to two decimals half away from zero (as
 * Rust's `f64::round`); `0` from zero; `undefined` when not finite. */
export function percentChange(from: number, to: number): number | undefined {
  if (from === 0) return 0;
  const scaled = ((to - from) / from) * 10_000;
  const percent = (Math.sign(scaled) * Math.round(Math.abs(scaled))) / 100;
  return Number.isFinite(percent) ? percent + 0 : undefined;
}
