/**
 * A Stryker test runner that drives `bun test` (Stryker has none for bun; its command runner
 * runs every test for every mutant and measures no coverage).
 *
 * Dry run: each test file runs alone, once, with coverage-preload.ts, which records which mutants
 * each test reaches; the JUnit report names the tests. A mutant no test reaches is reported
 * "no coverage" without a run. Code reached outside any test (imports, beforeAll) or in a Worker
 * counts as reached by every test of that file.
 *
 * Mutant run: a fresh `bun test --bail` over the files of the tests that reach the mutant, narrowed
 * to those tests by `-t`, with `__STRYKER_ACTIVE_MUTANT__` set (the instrumented code reads it at
 * load, in Workers too). A failing test kills the mutant; a run that outlives its budget (twice
 * the files' dry-run time plus 5 s) is a timeout.
 */
import type { MutantCoverage, StrykerOptions } from "@stryker-mutator/api/core";
import type { Logger } from "@stryker-mutator/api/logging";
import { commonTokens, declareClassPlugin, PluginKind, tokens } from "@stryker-mutator/api/plugin";
import {
  DryRunStatus,
  MutantRunStatus,
  TestStatus,
  type DryRunOptions,
  type DryRunResult,
  type MutantRunOptions,
  type MutantRunResult,
  type TestResult,
  type TestRunner,
  type TestRunnerCapabilities,
} from "@stryker-mutator/api/test-runner";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseJunit } from "./junit";

export interface BunRunnerOptions {
  /** Test files (relative to the project root) to run against this set of mutants. */
  testFiles: string[];
}

const PRELOAD = fileURLToPath(new URL("./coverage-preload.ts", import.meta.url));
/** What the dry run learnt, for the other runner processes (Stryker runs it in one of them): in the sandbox. */
const LEARNT = ".plinth-mutation-tests.json";

interface Known {
  file: string;
  /** the name `bun test -t` matches: describe blocks and test, joined by spaces */
  fullName: string;
}

interface FileCoverage {
  tests: number;
  outside: string[];
  perTest: Record<string, string[]>;
}

interface Finished {
  exitCode: number | null;
  output: string;
  ms: number;
  timedOut: boolean;
}

async function run(args: string[], env: Record<string, string | undefined>, timeoutMs: number): Promise<Finished> {
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  const exitCode = await proc.exited;
  clearTimeout(timer);
  return { exitCode, output: stdout + stderr, ms: performance.now() - started, timedOut };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function count(output: string, word: "pass" | "fail"): number {
  const match = output.match(new RegExp(`^\\s*(\\d+) ${word}$`, "m"));
  return match ? Number(match[1]) : 0;
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

export class BunTestRunner implements TestRunner {
  static inject = tokens(commonTokens.options, commonTokens.logger);

  private readonly testFiles: string[];
  private known = new Map<string, Known>();
  /** each test file's dry-run wall time, ms */
  private fileMs = new Map<string, number>();
  private readonly scratch = mkdtempSync(join(tmpdir(), "plinth-mutation-"));

  constructor(
    options: StrykerOptions,
    private readonly log: Logger,
  ) {
    const own = (options as StrykerOptions & { bun?: BunRunnerOptions }).bun;
    if (!own?.testFiles?.length) throw new Error("the bun test runner needs `bun.testFiles` in the Stryker options");
    this.testFiles = own.testFiles;
  }

  capabilities(): TestRunnerCapabilities {
    return { reloadEnvironment: true };
  }

  async dryRun(options: DryRunOptions): Promise<DryRunResult> {
    const tests: TestResult[] = [];
    const coverage: MutantCoverage = { static: {}, perTest: {} };
    for (const [index, file] of this.testFiles.entries()) {
      const covFile = join(this.scratch, `coverage-${index}.json`);
      const junitFile = join(this.scratch, `junit-${index}.xml`);
      const env = { ...process.env, PLINTH_MUTATION_COVERAGE: covFile };
      const args = ["test", "--preload", PRELOAD, `./${file}`, "--reporter=junit", "--reporter-outfile", junitFile];
      const done = await run(args, env, Math.max(options.timeout, 300_000));
      if (done.timedOut) return { status: DryRunStatus.Timeout, reason: `${file} did not finish in the dry run` };
      if (done.exitCode !== 0) return { status: DryRunStatus.Error, errorMessage: `${file} fails without mutants:\n${tail(done.output)}` };
      this.fileMs.set(file, done.ms);

      const ran = parseJunit(readFileSync(junitFile, "utf8")).filter((t) => !t.skipped);
      const reached: FileCoverage = JSON.parse(readFileSync(covFile, "utf8"));
      const workerFile = `${covFile}.worker`;
      const everyTest = [...reached.outside];
      if (existsSync(workerFile)) everyTest.push(...readFileSync(workerFile, "utf8").split("\n").filter(Boolean));
      const inOrder = reached.tests === ran.length;
      if (!inOrder) {
        this.log.warn(`${file}: ${reached.tests} tests started but the report lists ${ran.length}; its coverage counts for all its tests`);
        for (const ids of Object.values(reached.perTest)) everyTest.push(...ids);
      }
      const seen = new Set<string>();
      ran.forEach((test, i) => {
        const displayName = test.path.join(" > ");
        let id = `${file} > ${displayName}`;
        for (let n = 2; seen.has(id); n++) id = `${file} > ${displayName} #${n}`;
        seen.add(id);
        this.known.set(id, { file, fullName: test.path.join(" ") });
        tests.push({ id, name: displayName, fileName: file, timeSpentMs: Math.round(test.seconds * 1000), status: TestStatus.Success });
        const ids = [...everyTest, ...(inOrder ? (reached.perTest[String(i + 1)] ?? []) : [])];
        coverage.perTest[id] = Object.fromEntries(ids.map((mutant) => [mutant, 1]));
      });
      this.log.debug(`${file}: ${ran.length} tests in ${Math.round(done.ms)} ms`);
    }
    writeFileSync(LEARNT, JSON.stringify({ known: [...this.known], fileMs: [...this.fileMs] }));
    return { status: DryRunStatus.Complete, tests, mutantCoverage: options.coverageAnalysis === "off" ? undefined : coverage };
  }

  async mutantRun(options: MutantRunOptions): Promise<MutantRunResult> {
    if (this.known.size === 0) {
      const learnt: { known: [string, Known][]; fileMs: [string, number][] } = JSON.parse(readFileSync(LEARNT, "utf8"));
      this.known = new Map(learnt.known);
      this.fileMs = new Map(learnt.fileMs);
    }
    const filter = options.testFilter?.map((id) => this.known.get(id)).filter((k): k is Known => k !== undefined);
    const files = filter ? [...new Set(filter.map((k) => k.file))] : this.testFiles;
    const args = ["test", "--bail", ...files.map((f) => `./${f}`)];
    if (filter) args.push("-t", `^(?:${[...new Set(filter.map((k) => escapeRegExp(k.fullName)))].join("|")})$`);
    const budget = files.reduce((sum, f) => sum + (this.fileMs.get(f) ?? 0), 0);
    const timeout = Math.max(options.timeout, 2 * budget + 5_000);
    const env = { ...process.env, __STRYKER_ACTIVE_MUTANT__: options.activeMutant.id };
    const done = await run(args, env, timeout);
    if (done.timedOut) return { status: MutantRunStatus.Timeout, reason: `no result after ${timeout} ms`, duration: done.ms };

    const passed = count(done.output, "pass");
    const failed = [...done.output.matchAll(/^\(fail\) (.*?)(?: \[[\d.]+m?s\])?$/gm)].map((m) => m[1]!);
    if (done.exitCode === 0) return { status: MutantRunStatus.Survived, nrOfTests: passed, duration: done.ms };
    if (failed.length === 0 && count(done.output, "fail") === 0 && passed === 0 && !/error/i.test(done.output)) {
      return { status: MutantRunStatus.Error, errorMessage: `bun test ran no test:\n${tail(done.output)}` };
    }
    return {
      status: MutantRunStatus.Killed,
      killedBy: this.idsOf(failed),
      failureMessage: tail(done.output, 20),
      nrOfTests: passed + Math.max(failed.length, 1),
      duration: done.ms,
    };
  }

  /** The ids of the tests `bun test` printed as failed ("(fail) describe > test"). */
  private idsOf(failedNames: string[]): string[] {
    const names = new Set(failedNames.map((name) => name.replaceAll(" > ", " ")));
    return [...this.known].filter(([, k]) => names.has(k.fullName)).map(([id]) => id);
  }

  async dispose(): Promise<void> {
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

export const strykerPlugins = [declareClassPlugin(PluginKind.TestRunner, "bun", BunTestRunner)];

export const strykerValidationSchema = {
  $schema: "http://json-schema.org/draft-07/schema",
  type: "object",
  properties: {
    bun: {
      type: "object",
      properties: { testFiles: { type: "array", items: { type: "string" } } },
      required: ["testFiles"],
    },
  },
};
