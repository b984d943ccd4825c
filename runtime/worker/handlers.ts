/**
 * Turns a plugin's handler specs into what the worker runs: the function, its
 * compiled TypeBox checks, and whether it runs in an implicit transaction.
 */
import type { TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { Value } from "@sinclair/typebox/value";
import { PlinthError } from "../errors";
import { isAsync } from "./unit";

export type Handler = (ctx: any) => unknown;
/** A schema with its compiled check; `convert` first coerces strings (query, path params). */
export interface Validator {
  schema: TSchema;
  check: TypeCheck<TSchema>;
}
export interface Compiled {
  handler: Handler;
  /** false: run outside the unit of work (see unit.ts). */
  transaction: boolean;
  body?: Validator;
  query?: Validator;
  params?: Validator;
}

/** A handler function or `{ handler, body?, query?, params?, transaction? }`. */
export function compile(spec: unknown): Compiled {
  if (typeof spec === "function") return { handler: spec as Handler, transaction: !isAsync(spec) };
  const s = spec as { handler: Handler; transaction?: boolean } & Partial<Record<"body" | "query" | "params", TSchema>>;
  const compiled: Compiled = { handler: s.handler, transaction: s.transaction !== false && !isAsync(s.handler) };
  for (const key of ["body", "query", "params"] as const) {
    const schema = s[key];
    if (schema) compiled[key] = { schema, check: TypeCompiler.Compile(schema) };
  }
  return compiled;
}

/** Validates `value` (converting strings to the schema's types when `convert`); 400 PLT_VALIDATION naming each failing path. */
export function validate(where: string, validator: Validator | undefined, value: unknown, convert = false): unknown {
  if (!validator) return value;
  // The value arrived by postMessage: it is this worker's own copy, so converting it in place is safe.
  const candidate = convert ? Value.Convert(validator.schema, value) : value;
  if (validator.check.Check(candidate)) return candidate;
  const errors = [...validator.check.Errors(candidate)].slice(0, 10).map((e) => ({ path: where + e.path, message: e.message }));
  const summary = errors.map((e) => `${e.path}: ${e.message}`).join("; ");
  throw new PlinthError("PLT_VALIDATION", `invalid ${where}: ${summary}`, { data: errors });
}
