/**
 * Preloaded into `bun test` by the mutation runner's coverage run (tests/mutation/bun-runner.ts),
 * never by the ordinary suite. Stryker's instrumented code counts each mutant it reaches into
 * `globalThis.__stryker__.mutantCoverage`, under `currentTestId` when one is set: this file sets it
 * to the running test's sequence number (1, 2, … in the order bun runs them; the runner pairs
 * them with the JUnit report's names) and writes what was reached, at the end, to the file named
 * by PLINTH_MUTATION_COVERAGE. Code reached outside a test (imports, beforeAll, afterAll) is
 * listed as `outside`. Plugin Workers get coverage-worker.ts preloaded: it appends the mutants
 * they reach to `<file>.worker`.
 */
import { afterAll, afterEach, beforeEach } from "bun:test";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

type Counts = Record<string, number>;
interface Namespace {
  mutantCoverage: { static: Counts; perTest: Record<string, Counts> };
  currentTestId?: string;
}

const out = process.env.PLINTH_MUTATION_COVERAGE;
if (!out) throw new Error("coverage-preload.ts needs PLINTH_MUTATION_COVERAGE (the file to write coverage to)");

const ns: Namespace = { mutantCoverage: { static: {}, perTest: {} } };
(globalThis as { __stryker__?: Namespace }).__stryker__ = ns;

const WORKER_PRELOAD = fileURLToPath(new URL("./coverage-worker.ts", import.meta.url));
const BaseWorker = globalThis.Worker;
globalThis.Worker = class extends BaseWorker {
  constructor(url: string | URL, options: WorkerOptions = {}) {
    const preload = options.preload === undefined ? [] : Array.isArray(options.preload) ? options.preload : [options.preload];
    super(url, { ...options, preload: [...preload, WORKER_PRELOAD] });
  }
};

let tests = 0;
beforeEach(() => {
  ns.currentTestId = String(++tests);
});
afterEach(() => {
  ns.currentTestId = undefined;
});
afterAll(() => {
  const perTest: Record<string, string[]> = {};
  for (const [test, counts] of Object.entries(ns.mutantCoverage.perTest)) perTest[test] = Object.keys(counts);
  writeFileSync(out, JSON.stringify({ tests, outside: Object.keys(ns.mutantCoverage.static), perTest }));
});
