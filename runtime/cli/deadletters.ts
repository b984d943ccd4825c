/** `plinth deadletters <service> [--redrive <id>]`: through a running platform's HTTP API. */
import { keyHeader } from "./status";

export interface DeadLetterOptions {
  service: string;
  url: string;
  redrive?: number;
  key?: string;
}

export async function deadLetters(options: DeadLetterOptions): Promise<number> {
  const base = `${options.url.replace(/\/$/, "")}/api/platform/deadletters/${encodeURIComponent(options.service)}`;
  const headers = keyHeader(options.key);
  const res = options.redrive === undefined ? await fetch(base, { headers }) : await fetch(`${base}/${options.redrive}/redrive`, { method: "POST", headers });
  const body = (await res.json()) as unknown;
  if (!res.ok) {
    const error = (body as { error?: { code: string; message: string } }).error;
    console.error(`plinth: ${error?.code ?? res.status}: ${error?.message ?? res.statusText}`);
    return 1;
  }
  if (options.redrive !== undefined) {
    console.log(`re-driven dead letter ${options.redrive} of ${options.service}`);
    return 0;
  }
  const letters = body as Array<{ id: number; subscription: string; event: { type: string; id: string }; attempts: number; error: string; failed_at: string }>;
  if (letters.length === 0) console.log(`no dead letters for ${options.service}`);
  for (const l of letters) {
    console.log(`${l.id}  ${l.failed_at}  ${l.subscription}  ${l.event.type}  ${l.event.id}  attempts=${l.attempts}  ${l.error}`);
  }
  return 0;
}
