/** Assertions on PlinthErrors shared by the tests. */
import { expect } from "bun:test";
import { PlinthError } from "../../runtime/errors";

/** Awaits `p`, which must reject with a PlinthError, and returns that error. */
export async function rejection(p: Promise<unknown>): Promise<PlinthError> {
  const outcome = await p.then(
    () => ({ rejected: false as const }),
    (error: unknown) => ({ rejected: true as const, error }),
  );
  if (!outcome.rejected) throw new Error("expected the promise to reject");
  expect(outcome.error).toBeInstanceOf(PlinthError);
  return outcome.error as PlinthError;
}
