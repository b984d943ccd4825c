/**
 * Generative tests: fast-check properties run with a known seed, for a bounded time.
 *
 * The seed is fixed by default so that every run of the suite (CI included) tries the same
 * inputs; `PLINTH_SEED=<n>` replays a run and `PLINTH_SEED=random` explores new ones.
 * `PLINTH_PROPERTY_MS` scales the time budget (e.g. 60000 for a long local hunt).
 * A failure names the seed and the command that replays it.
 */
import fc from "fast-check";

export { fc };

const DEFAULT_SEED = 20261205;

export function propertySeed(): number {
  const given = process.env.PLINTH_SEED;
  if (given === "random") return (Math.random() * 2 ** 31) | 0;
  return given ? Number(given) : DEFAULT_SEED;
}

export interface Budget {
  /** Most runs (inputs tried). */
  runs: number;
  /** Stop generating after this long (the runs done so far count); PLINTH_PROPERTY_MS overrides it. */
  ms: number;
  /** Inputs always tried first (the known hard cases), before the generated ones. */
  examples?: unknown[][];
}

/** Runs an async property and fails with its seed, counterexample and replay command. */
export async function checkProperty<Ts extends [unknown, ...unknown[]]>(
  name: string,
  budget: Budget,
  arbitraries: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  property: (...args: Ts) => Promise<void>,
): Promise<number> {
  const seed = propertySeed();
  const ms = Number(process.env.PLINTH_PROPERTY_MS ?? budget.ms);
  let runs = 0;
  const prop = fc.asyncProperty(...arbitraries, async (...args: Ts) => {
    runs++;
    await property(...args);
  });
  const result = await fc.check(prop, {
    seed,
    numRuns: budget.runs,
    examples: (budget.examples ?? []) as Ts[],
    interruptAfterTimeLimit: ms,
    markInterruptAsFailure: false,
    // One shrink pass at most: each run talks to a live process and a failure may have left it down.
    endOnFailure: true,
  });
  if (result.failed) {
    const cause = result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance);
    throw new Error(
      `property "${name}" failed after ${result.numRuns} runs (seed ${seed}, path ${result.counterexamplePath}):\n` +
        `  input: ${fc.stringify(abbreviate(result.counterexample))}\n  ${cause}\n` +
        `  replay: PLINTH_SEED=${seed} bun test <this file>`,
    );
  }
  return runs;
}

/** The input as printed: long strings shortened, nesting cut at 8 levels (inputs may be deep or cyclic). */
function abbreviate(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return value.length <= 160 ? value : `${value.slice(0, 100)}…(${value.length} chars)…${value.slice(-40)}`;
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return value;
  if (depth >= 8) return "…";
  if (Array.isArray(value)) return value.slice(0, 20).map((v) => abbreviate(v, depth + 1));
  return Object.fromEntries(Object.entries(value).slice(0, 20).map(([k, v]) => [k, abbreviate(v, depth + 1)]));
}
