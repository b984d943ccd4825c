/**
 * Mutation testing: `npm run mutate [target…]` runs StrykerJS over each target of
 * tests/mutation/targets.ts (all of them when none is named) with the bun test runner of
 * tests/mutation/bun-runner.ts, then prints each target's score and its surviving mutants.
 * Reports: reports/mutation/<target>.{json,html}. Options: --concurrency N (default 2);
 * --incremental reuses the previous run's results for mutants whose code and covering tests did
 * not change (reports/mutation/<target>.incremental.json), to iterate quickly while adding tests.
 */
import type { LogLevel, MutantResult, PartialStrykerOptions } from "@stryker-mutator/api/core";
import { Stryker } from "@stryker-mutator/core";
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { TARGETS, type MutationTarget } from "../tests/mutation/targets";

interface Tally {
  target: string;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  errors: number;
  minutes: number;
  survivors: MutantResult[];
}

interface Options {
  targets: MutationTarget[];
  concurrency: number;
  incremental: boolean;
}

function parseArgs(argv: string[]): Options {
  let concurrency = 2;
  let incremental = false;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--concurrency") concurrency = Number(argv[++i]);
    else if (arg === "--incremental") incremental = true;
    else names.push(arg.replace(/\/+$/, "").replace(/\.ts$/, ""));
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error("--concurrency takes a whole number ≥ 1");
  const targets = names.length === 0 ? TARGETS : names.map((name) => {
    const found = TARGETS.find((t) => t.name === name || t.mutate.some((glob) => glob.replace(/\.ts$/, "") === name));
    if (!found) throw new Error(`no mutation target "${name}"; known: ${TARGETS.map((t) => t.name).join(", ")}`);
    return found;
  });
  return { targets, concurrency, incremental };
}

function slug(name: string): string {
  return name.replaceAll("/", "-");
}

async function mutate(target: MutationTarget, { concurrency, incremental }: Options): Promise<Tally> {
  const started = performance.now();
  const options: PartialStrykerOptions & { bun: { testFiles: string[] } } = {
    plugins: [resolve("tests/mutation/bun-runner.ts")],
    testRunner: "bun",
    bun: { testFiles: target.tests },
    mutate: target.mutate,
    coverageAnalysis: "perTest",
    concurrency,
    incremental,
    incrementalFile: `reports/mutation/${slug(target.name)}.incremental.json`,
    reporters: [process.stdout.isTTY ? "progress" : "progress-append-only", "json", "html"],
    jsonReporter: { fileName: `reports/mutation/${slug(target.name)}.json` },
    htmlReporter: { fileName: `reports/mutation/${slug(target.name)}.html` },
    // Only what the tests read is copied to the sandbox.
    ignorePatterns: ["/dist", "/data", "/reports", "/.ci", "*.sqlite*"],
    tempDirName: ".stryker-tmp",
    // Stryker rewrites tsconfig.json's references with TypeScript's JS API, which TypeScript 7
    // no longer has; this project's tsconfig has no references, so point it at no file.
    tsconfigFile: "tests/mutation/no-tsconfig-to-rewrite.json",
    logLevel: "warn" as LogLevel,
    fileLogLevel: "off" as LogLevel,
  };
  const results = await new Stryker(options).runMutationTest();
  const of = (status: MutantResult["status"]) => results.filter((m) => m.status === status);
  return {
    target: target.name,
    killed: of("Killed").length,
    timeout: of("Timeout").length,
    survived: of("Survived").length,
    noCoverage: of("NoCoverage").length,
    errors: of("RuntimeError").length + of("CompileError").length,
    minutes: (performance.now() - started) / 60_000,
    survivors: [...of("Survived"), ...of("NoCoverage")],
  };
}

function score(t: Tally): number {
  const detected = t.killed + t.timeout;
  const valid = detected + t.survived + t.noCoverage;
  return valid === 0 ? 100 : (100 * detected) / valid;
}

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

function table(tallies: Tally[]): string {
  const lines = [
    row(["target", "score", "killed", "timeout", "survived", "no coverage", "errors", "minutes"]),
    row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"]),
  ];
  for (const t of tallies) {
    lines.push(row([t.target, `${score(t).toFixed(1)}%`, t.killed, t.timeout, t.survived, t.noCoverage, t.errors, t.minutes.toFixed(1)]));
  }
  return lines.join("\n");
}

const oneLine = (code: string) => code.replace(/\s+/g, " ").slice(0, 70);

/** The mutated code, from the report's positions (lines and columns count from 1). */
function original(m: MutantResult): string {
  const lines = readFileSync(m.fileName, "utf8").split("\n");
  const { start, end } = m.location;
  if (start.line === end.line) return lines[start.line - 1]!.slice(start.column - 1, end.column - 1);
  return [lines[start.line - 1]!.slice(start.column - 1), ...lines.slice(start.line, end.line - 1), lines[end.line - 1]!.slice(0, end.column - 1)].join(" ");
}

function survivorLines(t: Tally): string[] {
  return t.survivors
    .sort((a, b) => a.fileName.localeCompare(b.fileName) || a.location.start.line - b.location.start.line || a.location.start.column - b.location.start.column)
    .map((m) => {
      const where = `${relative(process.cwd(), m.fileName)}:${m.location.start.line}:${m.location.start.column}`;
      const status = m.status === "NoCoverage" ? " (no coverage)" : "";
      return `  ${where} ${m.mutatorName}${status}: ${oneLine(original(m))} → ${oneLine(m.replacement ?? "")}`;
    });
}

const options = parseArgs(process.argv.slice(2));
const tallies: Tally[] = [];
for (const target of options.targets) {
  console.log(`\n== ${target.name}: ${target.mutate.join(" ")} against ${target.tests.length} test files`);
  const tally = await mutate(target, options);
  tallies.push(tally);
  console.log(`${target.name}: ${score(tally).toFixed(1)}% in ${tally.minutes.toFixed(1)} min`);
  const survivors = survivorLines(tally);
  if (survivors.length > 0) console.log(`surviving mutants:\n${survivors.join("\n")}`);
}
console.log(`\n${table(tallies)}`);
