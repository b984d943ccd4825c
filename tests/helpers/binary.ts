/**
 * Runs the compiled binary (dist/plinth) as a user would: in its own folder,
 * on free ports, reading its log to learn where it listens.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { createKey } from "./keys";
import { REPO } from "./plugins";

export const BINARY = join(REPO, "dist/plinth");

/** What the binary is built from. */
const SOURCES = ["runtime", "services", "config", "scripts", "package.json", "package-lock.json"];
let fresh = false;

/**
 * Builds dist/plinth when it is missing or older than any of its sources, so a test never runs a
 * stale binary after an edit. The build goes to a folder of its own and is renamed into place: a
 * binary another test process is running, or starting, is never half-written.
 */
export function ensureBinary(): void {
  if (fresh) return;
  if (existsSync(BINARY) && newestSource() <= statSync(BINARY).mtimeMs) {
    fresh = true;
    return;
  }
  const staging = join(REPO, "dist", `.build-${process.pid}`);
  mkdirSync(staging, { recursive: true });
  try {
    const build = Bun.spawnSync([process.execPath, "scripts/build.ts"], { cwd: REPO, stdout: "inherit", stderr: "inherit", env: { ...process.env, PLINTH_OUTFILE: join(staging, "plinth") } });
    if (build.exitCode !== 0) throw new Error("building dist/plinth failed");
    for (const file of readdirSync(staging)) renameSync(join(staging, file), join(REPO, "dist", file));
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  fresh = true;
}

function newestSource(): number {
  let newest = 0;
  const visit = (path: string) => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) for (const entry of readdirSync(path)) visit(join(path, entry));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  for (const source of SOURCES) visit(join(REPO, source));
  return newest;
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion (for commands that exit). */
export async function runBinary(cwd: string, args: string[], timeoutMs = 15_000): Promise<Finished> {
  ensureBinary();
  const proc = Bun.spawn([BINARY, ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

export interface Running extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  mqttUrl: string;
  wsUrl: string;
  adminKey: string;
  /** Everything the platform logged so far. */
  log(): string;
  /** Resolves once the log matches `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts so far: each start gets an admin key of its own name (a restart reuses the data folder). */
let started = 0;

/** Config text that opens routes and MQTT to anonymous callers, for tests not about authentication. */
export const OPEN_AUTH = `auth: { defaultPolicy: "public", mqtt: { anonymous: true } }`;

/**
 * Starts `plinth run` in `cwd` on free ports and waits until it is ready. Without a
 * platform.config.ts in `cwd`, writes one that is open (OPEN_AUTH). `adminKey` is an API key
 * with role admin in the data folder (`--data`, or ./data).
 */
export async function startBinary(cwd: string, args: string[] = [], binary = BINARY): Promise<Running> {
  ensureBinary();
  if (!existsSync(join(cwd, "platform.config.ts"))) writeFileSync(join(cwd, "platform.config.ts"), `export default { ${OPEN_AUTH} };\n`);
  const dataFlag = args.indexOf("--data");
  const adminKey = createKey(resolve(cwd, dataFlag >= 0 ? args[dataFlag + 1]! : "data"), ["admin"], `e2e-admin-${++started}`);
  const proc = Bun.spawn([binary, "run", "--port", "0", "--mqtt-port", "0", ...args], {
    cwd,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const listeners = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      for (const l of listeners) l();
    }
  };
  void pump(proc.stderr);
  void pump(proc.stdout);

  const waitForLog = (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = text.match(pattern);
        if (m) {
          listeners.delete(check);
          clearTimeout(timer);
          resolve(m);
        }
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`log did not match ${pattern} within ${timeoutMs} ms; log so far:\n${text}`));
      }, timeoutMs);
      listeners.add(check);
      check();
      void proc.exited.then(() => setTimeout(check, 50));
    });

  const exited = proc.exited.then((code) => code);
  const ready = await Promise.race([
    waitForLog(/platform ready/),
    exited.then((code) => {
      throw new Error(`plinth exited with ${code} before ready:\n${text}`);
    }),
  ]);
  void ready;
  const http = text.match(/gateway listening url=(http:\/\/[\d.]+:\d+)/)![1]!;
  // In a cluster there is no embedded broker: the cluster's broker is the MQTT URL.
  const mqttUrl = (text.match(/broker listening url=(mqtt:\/\/[\d.]+:\d+)/) ?? text.match(/platform ready .*cluster=(mqtts?:\/\/\S+)/))![1]!;
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return exited;
  };
  return {
    proc,
    adminKey,
    url: http,
    mqttUrl,
    wsUrl: `${http.replace("http:", "ws:")}/mqtt`,
    log: () => text,
    waitForLog,
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop("SIGKILL");
    },
  };
}
