import { describe, expect, test } from "bun:test";
import { LogLevels, createLogger, type LoggerOptions } from "../../runtime/log";

function capture(options: LoggerOptions = {}) {
  const lines: string[] = [];
  const log = createLogger({ ...options, write: (line) => lines.push(line) });
  return { log, lines };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("createLogger", () => {
  test("defaults to level info", () => {
    const { log, lines } = capture();
    expect(log.level).toBe("info");
    log.debug("hidden");
    log.info("shown");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("shown");
  });

  test("drops records below the threshold and keeps the rest", () => {
    const { log, lines } = capture({ level: "warn", format: "json" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(["w", "e"]);
  });

  test("debug lets everything through", () => {
    const { log, lines } = capture({ level: "debug" });
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    expect(lines).toHaveLength(4);
  });

  test("silent writes nothing, not even errors", () => {
    const { log, lines } = capture({ level: "silent" });
    log.error("e");
    log.warn("w");
    expect(lines).toEqual([]);
  });

  test("levels are ordered", () => {
    expect(LogLevels.debug).toBeLessThan(LogLevels.info);
    expect(LogLevels.info).toBeLessThan(LogLevels.warn);
    expect(LogLevels.warn).toBeLessThan(LogLevels.error);
    expect(LogLevels.error).toBeLessThan(LogLevels.silent);
  });
});

describe("json format", () => {
  test("one JSON object per record with time, level, name, msg and the fields", () => {
    const { log, lines } = capture({ format: "json", name: "gateway" });
    log.info("request", { method: "GET", status: 200, nested: { a: [1, 2] } });
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(record.time).toMatch(ISO_TIME);
    expect(record).toEqual({
      time: record.time,
      level: "info",
      name: "gateway",
      msg: "request",
      method: "GET",
      status: 200,
      nested: { a: [1, 2] },
    });
    expect(Object.keys(record).slice(0, 4)).toEqual(["time", "level", "name", "msg"]);
  });

  test("no name key when the logger has no name", () => {
    const { log, lines } = capture({ format: "json" });
    log.warn("careful");
    const record = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect("name" in record).toBe(false);
    expect(record.level).toBe("warn");
  });

  test("an Error field is written as its message", () => {
    const { log, lines } = capture({ format: "json" });
    log.error("failed", { err: new Error("disk full") });
    expect((JSON.parse(lines[0]!) as Record<string, unknown>).err).toBe("disk full");
  });

  test("each line is a single line", () => {
    const { log, lines } = capture({ format: "json" });
    log.info("multi\nline", { text: "a\nb" });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.includes("\n")).toBe(false);
    expect((JSON.parse(lines[0]!) as Record<string, unknown>).msg).toBe("multi\nline");
  });
});

describe("pretty format", () => {
  test("time, padded upper-case level, [name], message and key=value fields", () => {
    const { log, lines } = capture({ name: "broker" });
    log.info("listening", { port: 1883, host: "127.0.0.1", note: "two words", skipped: undefined });
    const line = lines[0]!;
    const [time, ...rest] = line.split(" ");
    expect(time).toMatch(ISO_TIME);
    expect(rest.join(" ")).toBe('INFO  [broker] listening port=1883 host=127.0.0.1 note="two words"');
  });

  test("an Error field is written as its quoted message", () => {
    const { log, lines } = capture();
    log.error("failed", { err: new Error("disk full") });
    expect(lines[0]).toEndWith('ERROR failed err="disk full"');
  });
});

describe("child loggers", () => {
  test("child names are joined with '.'", () => {
    const { log, lines } = capture({ format: "json", name: "plinth" });
    log.child("loader").child("orders").info("ready");
    expect((JSON.parse(lines[0]!) as Record<string, unknown>).name).toBe("plinth.loader.orders");
  });

  test("a child of an unnamed logger takes the child name", () => {
    const { log, lines } = capture({ name: undefined });
    log.child("gateway").warn("slow");
    expect(lines[0]).toContain("WARN  [gateway] slow");
  });

  test("a child keeps the parent's level, format and writer", () => {
    const { log, lines } = capture({ level: "error", format: "json", name: "a" });
    const child = log.child("b");
    expect(child.level).toBe("error");
    child.warn("dropped");
    child.error("kept");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!) as Record<string, unknown>).toMatchObject({ level: "error", name: "a.b", msg: "kept" });
  });

  test("creating a child does not rename the parent", () => {
    const { log, lines } = capture({ format: "json", name: "root" });
    log.child("kid");
    log.info("x");
    expect((JSON.parse(lines[0]!) as Record<string, unknown>).name).toBe("root");
  });
});
