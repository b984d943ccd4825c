/**
 * globalThis.fetch replaced for a test by a function of the request: the commands that talk to a
 * running platform over HTTP (status, deadletters) tested without a port. The answers they are
 * given mirror the platform's routes (services/platform, runtime/gateway/health.ts).
 */
export interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
}

export interface FakeFetch extends Disposable {
  sent: Sent[];
}

export const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

export function fakeFetch(answer: (req: Request) => Response | Promise<Response>): FakeFetch {
  const real = globalThis.fetch;
  const sent: Sent[] = [];
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const req = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
    sent.push({ method: req.method, url: req.url, headers: Object.fromEntries(req.headers) });
    return answer(req);
  }) as typeof fetch;
  return { sent, [Symbol.dispose]: () => void (globalThis.fetch = real) };
}
