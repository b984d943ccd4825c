/**
 * Runs the command line in this process as runtime/main.ts does (`cli(argv).catch(reportFatal)`),
 * with what it prints captured and process.exit turned into a thrown ExitCalled: the exit code is
 * the one given to process.exit, or process.exitCode when the command returns (reset afterwards, so
 * the test run itself does not end with it).
 */
import { spyOn } from "bun:test";
import { cli, reportFatal } from "../../../runtime/cli/index";

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

export class ExitCalled extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/** Runs `fn` with console.log/info on stdout, console.error/warn on stderr and process.exit throwing ExitCalled. */
export async function captured(fn: () => unknown): Promise<Outcome> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const line = (to: string[]) => (...args: unknown[]) => void to.push(args.map(String).join(" "));
  const spies = [
    spyOn(console, "log").mockImplementation(line(stdout)),
    spyOn(console, "info").mockImplementation(line(stdout)),
    spyOn(console, "error").mockImplementation(line(stderr)),
    spyOn(console, "warn").mockImplementation(line(stderr)),
    spyOn(process, "exit").mockImplementation(((code?: number) => {
      throw new ExitCalled(code ?? 0);
    }) as typeof process.exit),
  ];
  const before = process.exitCode;
  process.exitCode = 0;
  let code: number;
  try {
    await fn();
    code = Number(process.exitCode ?? 0);
  } catch (err) {
    if (!(err instanceof ExitCalled)) throw err;
    code = err.code;
  } finally {
    for (const spy of spies) spy.mockRestore();
    process.exitCode = before;
  }
  return { code, stdout: stdout.join("\n"), stderr: stderr.join("\n") };
}

/** `plinth <argv>` in process: cli, and reportFatal for what it throws (as runtime/main.ts). */
export function invoke(argv: string[]): Promise<Outcome> {
  return captured(() =>
    cli(argv).catch((err: unknown) => {
      if (err instanceof ExitCalled) throw err;
      reportFatal(err);
    }),
  );
}
