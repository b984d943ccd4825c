/**
 * Structured logger. One line per record, either human-readable ("pretty") or
 * JSON. Dependency-free so workers can use it too.
 */
export const LogLevels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof LogLevels;
export type LogFormat = "pretty" | "json";
export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(name: string): Logger;
  readonly level: LogLevel;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  name?: string;
  write?: (line: string) => void;
}

/** JSON.stringify that never throws (BigInt, cycles): logging must not fail the caller. */
function stringify(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return JSON.stringify(String(v));
  }
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return stringify(v.message);
  if (typeof v === "string") return /^[\w./:@-]+$/.test(v) ? v : stringify(v);
  return stringify(v);
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const threshold = LogLevels[level];
  const format = options.format ?? "pretty";
  const write = options.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const name = options.name;

  const emit = (lvl: Exclude<LogLevel, "silent">, msg: string, fields?: Fields) => {
    if (LogLevels[lvl] < threshold) return;
    const time = new Date().toISOString();
    if (format === "json") {
      const record: Fields = { time, level: lvl, ...(name ? { name } : {}), msg };
      for (const [k, v] of Object.entries(fields ?? {})) {
        // The record's own keys win over fields of the same name.
        if (!(k in record)) record[k] = v instanceof Error ? v.message : typeof v === "bigint" ? String(v) : v;
      }
      write(stringify(record));
      return;
    }
    let line = `${time} ${lvl.toUpperCase().padEnd(5)} ${name ? `[${name}] ` : ""}${msg}`;
    for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    write(line);
  };

  return {
    level,
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (child) => createLogger({ ...options, name: name ? `${name}.${child}` : child }),
  };
}
