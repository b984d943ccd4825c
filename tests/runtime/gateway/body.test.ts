import { describe, expect, test } from "bun:test";
import { readBody } from "../../../runtime/gateway/body";
import { rejection } from "../../helpers/errors";
import { eventually } from "../../helpers/eventually";

const URL_ = "http://plinth.test/api/x";
/** readBody as a promise (it answers a request without a body synchronously, with undefined). */
const read = (...args: Parameters<typeof readBody>) => Promise.resolve(readBody(...args));
const LIMIT = 64;
const DEPTH = 8;
const LIMITS = { maxBytes: LIMIT, maxJsonDepth: DEPTH };

function post(body: RequestInit["body"], headers: Record<string, string> = {}): Request {
  return new Request(URL_, { method: "POST", body, headers });
}


/** A streamed body (no content-length) that serves `chunks` and records how far it was read and whether it was cancelled. */
function streamed(chunks: Uint8Array[] | (() => Uint8Array), type = "application/json") {
  const state = { pulls: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      state.pulls++;
      if (typeof chunks === "function") return controller.enqueue(chunks());
      const next = chunks.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
    cancel() {
      state.cancelled = true;
    },
  });
  const request = new Request(URL_, { method: "POST", body: stream, headers: { "content-type": type } });
  return { request, state };
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe("readBody: JSON", () => {
  test("parses an application/json body", async () => {
    expect(await readBody(post(JSON.stringify({ a: 1, b: [true, null] }), { "content-type": "application/json" }), LIMITS)).toEqual({
      a: 1,
      b: [true, null],
    });
  });

  test("accepts parameters and any letter case in the content type", async () => {
    expect(await readBody(post(`{"x":"é"}`, { "content-type": "Application/JSON; charset=utf-8" }), LIMITS)).toEqual({ x: "é" });
  });

  test.each(["application/cloudevents+json", "application/vnd.api+json", "application/merge-patch+json; charset=utf-8"])(
    "parses a %s body as JSON",
    async (type) => {
      expect(await readBody(post(`{"ok":true}`, { "content-type": type }), LIMITS)).toEqual({ ok: true });
    },
  );

  test("JSON scalars come back as they are", async () => {
    const json = { "content-type": "application/json" };
    expect(await readBody(post("42", json), LIMITS)).toBe(42);
    expect(await readBody(post(`"s"`, json), LIMITS)).toBe("s");
    expect(await readBody(post("null", json), LIMITS)).toBeNull();
    expect(await readBody(post("false", json), LIMITS)).toBe(false);
  });

  test("a body without a content type is read as JSON when the route declares no body", async () => {
    const req = post(bytes(`{"n":1}`));
    expect(req.headers.get("content-type")).toBeNull();
    expect(await readBody(req, LIMITS)).toEqual({ n: 1 });
  });

  test("a body without a content type on a route that declares a body rejects with PLT_UNSUPPORTED_MEDIA_TYPE (415)", async () => {
    const err = await rejection(read(post(bytes(`{"n":1}`)), LIMITS, undefined, true));
    expect(err.code).toBe("PLT_UNSUPPORTED_MEDIA_TYPE");
    expect(err.status).toBe(415);
    // ...and no body at all is still no body (the schema then names what is missing).
    expect(readBody(post(null), LIMITS, undefined, true)).toBeUndefined();
  });

  test("malformed JSON rejects with PLT_BAD_JSON (400)", async () => {
    const err = await rejection(read(post(`{"a":`, { "content-type": "application/json" }), LIMITS));
    expect(err.code).toBe("PLT_BAD_JSON");
    expect(err.status).toBe(400);
    expect(err.message).toContain("malformed JSON");
  });

  test("malformed +json rejects with PLT_BAD_JSON", async () => {
    expect((await rejection(read(post("nope", { "content-type": "application/problem+json" }), LIMITS))).code).toBe("PLT_BAD_JSON");
  });

  test("a multi-byte character split across chunks is decoded intact", async () => {
    const all = bytes(`{"w":"日本"}`);
    const { request } = streamed([all.slice(0, 7), all.slice(7, 8), all.slice(8)]);
    expect(await readBody(request, LIMITS)).toEqual({ w: "日本" });
  });
});

describe("readBody: JSON depth", () => {
  const json = { "content-type": "application/json" };
  const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

  test("nesting at the limit is parsed", async () => {
    expect(await readBody(post(nested(DEPTH), json), LIMITS)).toEqual(JSON.parse(nested(DEPTH)));
    expect(await readBody(post('{"a":'.repeat(DEPTH - 1) + "{}" + "}".repeat(DEPTH - 1), json), LIMITS)).toBeDefined();
  });

  test.each([
    ["arrays", nested(DEPTH + 1)],
    ["objects", '{"a":'.repeat(DEPTH) + "{}" + "}".repeat(DEPTH)],
    ["mixed", '[{"a":'.repeat(DEPTH / 2) + "[]" + "}]".repeat(DEPTH / 2)],
    ["unclosed", "[".repeat(DEPTH + 1)],
  ])("deeper %s reject with PLT_BAD_JSON (400) naming the limit", async (_, text) => {
    const err = await rejection(read(post(text, json), LIMITS));
    expect(err.code).toBe("PLT_BAD_JSON");
    expect(err.status).toBe(400);
    expect(err.message).toContain(`${DEPTH} levels (gateway.maxJsonDepth)`);
    expect(err.data).toEqual({ maxJsonDepth: DEPTH });
  });

  test("brackets inside strings, escaped quotes included, do not count", async () => {
    const text = JSON.stringify({ s: "[".repeat(40), t: `\\"{{{{{{{{{{{{{{{`, u: ["\\", "[[[[[[[[[[[[[["] });
    expect(await readBody(post(text, json), { maxBytes: 1024, maxJsonDepth: 2 })).toEqual(JSON.parse(text));
  });

  test("a body without a content type is held to the limit too", async () => {
    expect((await rejection(read(post(bytes(nested(DEPTH + 1))), LIMITS))).code).toBe("PLT_BAD_JSON");
  });
});

describe("readBody: text", () => {
  test("text/plain returns the string", async () => {
    expect(await readBody(post("hello world", { "content-type": "text/plain" }), LIMITS)).toBe("hello world");
  });

  test("other text/* types return the string, not parsed", async () => {
    expect(await readBody(post(`{"a":1}`, { "content-type": "text/csv; charset=utf-8" }), LIMITS)).toBe(`{"a":1}`);
  });

  test("text/html is returned as text even when it looks like JSON", async () => {
    expect(await readBody(post("[1,2]", { "content-type": "text/html" }), LIMITS)).toBe("[1,2]");
  });
});

describe("readBody: empty", () => {
  test("GET, HEAD and a Content-Length of 0 have no body: undefined at once, not a promise", () => {
    expect(readBody(new Request(URL_), LIMITS)).toBeUndefined();
    expect(readBody(new Request(URL_, { method: "HEAD" }), LIMITS)).toBeUndefined();
    expect(readBody(post("", { "content-length": "0" }), LIMITS)).toBeUndefined();
  });

  test("no body → undefined", async () => {
    expect(await readBody(new Request(URL_), LIMITS)).toBeUndefined();
    expect(await readBody(new Request(URL_, { method: "DELETE" }), LIMITS)).toBeUndefined();
  });

  test("an empty body without a content type → undefined", async () => {
    expect(await readBody(post(new Uint8Array(0)), LIMITS)).toBeUndefined();
  });

  test.each([
    ["empty", ""],
    ["a byte-order mark alone", "\uFEFF"],
  ])("an application/json body that is %s rejects with PLT_BAD_JSON, as Request.json() does", async (_, text) => {
    const json = { "content-type": "application/json" };
    expect(new Request(URL_, { method: "POST", body: text, headers: json }).json()).rejects.toBeInstanceOf(SyntaxError);
    for (const request of [post(text, json), post(bytes(text), { "content-type": "application/json; charset=utf-8" }), streamed(text ? [bytes(text)] : []).request]) {
      const err = await rejection(read(request, LIMITS));
      expect(err.code).toBe("PLT_BAD_JSON");
      expect(err.status).toBe(400);
    }
  });

  test("an empty stream of text → undefined", async () => {
    const { request } = streamed([], "text/plain");
    expect(await readBody(request, LIMITS)).toBeUndefined();
  });

  test("an empty body of an unsupported type → undefined, not 415", async () => {
    expect(await readBody(post("", { "content-type": "application/x-www-form-urlencoded" }), LIMITS)).toBeUndefined();
  });
});

describe("readBody: size limit", () => {
  test("a body exactly at the limit is accepted", async () => {
    const text = "x".repeat(LIMIT - 2);
    expect(await readBody(post(JSON.stringify(text), { "content-type": "application/json" }), LIMITS)).toBe(text);
  });

  test("a content-length over the limit rejects with PLT_BODY_TOO_LARGE (413) without reading", async () => {
    const { request, state } = streamed(() => bytes("x"));
    request.headers.set("content-length", String(LIMIT + 1));
    const err = await rejection(read(request, LIMITS));
    expect(err.code).toBe("PLT_BODY_TOO_LARGE");
    expect(err.status).toBe(413);
    expect(err.data).toEqual({ maxBytes: LIMIT });
    expect(request.bodyUsed).toBe(false);
    expect(state.pulls).toBeLessThanOrEqual(1); // a stream may pre-fill its queue once; nothing was consumed
  });

  test("a declared oversize body is refused even though its actual bytes would fit", async () => {
    const req = post(`{}`, { "content-type": "application/json", "content-length": String(LIMIT * 10) });
    expect((await rejection(read(req, LIMITS))).code).toBe("PLT_BODY_TOO_LARGE");
    expect(req.bodyUsed).toBe(false);
  });

  test("a streamed body over the limit rejects with PLT_BODY_TOO_LARGE", async () => {
    const { request, state } = streamed([bytes("[" + "1,".repeat(20)), bytes("1,".repeat(20)), bytes("1,".repeat(20) + "1]")]);
    expect(request.headers.get("content-length")).toBeNull();
    const err = await rejection(read(request, LIMITS));
    expect(err.code).toBe("PLT_BODY_TOO_LARGE");
    expect(err.data).toEqual({ maxBytes: LIMIT });
    expect(state.pulls).toBeGreaterThan(1);
  });

  test("an endless stream stops being read once over the limit, and is cancelled", async () => {
    const { request, state } = streamed(() => bytes("0123456789"));
    const err = await rejection(read(request, LIMITS));
    expect(err.code).toBe("PLT_BODY_TOO_LARGE");
    expect(state.pulls).toBeLessThan(20);
    await eventually(() => state.cancelled, 1_000);
  });

  test("a body over the limit sent without content-length (a Blob) is refused", async () => {
    const req = post(new Blob(["y".repeat(LIMIT + 1)]), { "content-type": "text/plain" });
    expect((await rejection(read(req, LIMITS))).code).toBe("PLT_BODY_TOO_LARGE");
  });
});

describe("readBody: unsupported media types", () => {
  test("form-urlencoded rejects with PLT_UNSUPPORTED_MEDIA_TYPE (415)", async () => {
    const err = await rejection(read(post("a=1&b=2", { "content-type": "application/x-www-form-urlencoded" }), LIMITS));
    expect(err.code).toBe("PLT_UNSUPPORTED_MEDIA_TYPE");
    expect(err.status).toBe(415);
    expect(err.message).toContain("application/x-www-form-urlencoded");
  });

  test("URLSearchParams bodies (form-urlencoded by default) are refused", async () => {
    expect((await rejection(read(post(new URLSearchParams({ a: "1" })), LIMITS))).code).toBe("PLT_UNSUPPORTED_MEDIA_TYPE");
  });

  test.each(["application/octet-stream", "application/xml", "multipart/form-data; boundary=x", "application/jsonx"])(
    "%s rejects with PLT_UNSUPPORTED_MEDIA_TYPE",
    async (type) => {
      expect((await rejection(read(post("data", { "content-type": type }), LIMITS))).code).toBe("PLT_UNSUPPORTED_MEDIA_TYPE");
    },
  );
});

describe("readBody: edges of the limit, the method and the declared length", () => {
  const json = { "content-type": "application/json" };

  test("a content-length of exactly the limit is read", async () => {
    const text = JSON.stringify("x".repeat(LIMIT - 2));
    expect(await read(post(text, { ...json, "content-length": String(LIMIT) }), LIMITS)).toBe("x".repeat(LIMIT - 2));
  });

  test("a body with a content-length is decoded by its type", async () => {
    expect(await read(post(`{"a":1}`, { ...json, "content-length": "7" }), LIMITS)).toEqual({ a: 1 });
    expect(await read(post("hello", { "content-type": "text/plain", "content-length": "5" }), LIMITS)).toBe("hello");
  });

  test.each(["GET", "HEAD"])("a %s has no body, whatever its content type says", (method) => {
    expect(readBody(new Request(URL_, { method, headers: json }), LIMITS)).toBeUndefined();
    expect(readBody(new Request(URL_, { method, headers: { ...json, "content-length": "0" } }), LIMITS)).toBeUndefined();
  });

  test("an empty application/json body is malformed JSON, with content-length 0 or without any body", async () => {
    const zero = await rejection(read(post("", { ...json, "content-length": "0" }), LIMITS));
    expect([zero.code, zero.message]).toEqual(["PLT_BAD_JSON", "malformed JSON body: empty"]);
    const none = await rejection(read(new Request(URL_, { method: "POST", headers: json }), LIMITS));
    expect([none.code, none.message]).toEqual(["PLT_BAD_JSON", "malformed JSON body: empty"]);
  });

  test("a media type with spaces before its parameters is still JSON", async () => {
    expect(await read(post(`{"a":1}`, { "content-type": "application/json ; charset=utf-8" }), LIMITS)).toEqual({ a: 1 });
  });

  test("the refusals name what to do: the limit in bytes, the content type to send", async () => {
    const large = await rejection(read(post("{}", { ...json, "content-length": String(LIMIT + 1) }), LIMITS));
    expect(large.message).toBe(`request body exceeds ${LIMIT} bytes`);
    const untyped = await rejection(read(post("{}"), LIMITS, Number.POSITIVE_INFINITY, true));
    expect(untyped.message).toBe("request body without a content-type: send application/json");
  });

  test("a body not received by its deadline rejects with PLT_REQUEST_TIMEOUT (408)", async () => {
    const stalled = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
    const request = new Request(URL_, { method: "POST", body: stalled, headers: json });
    const err = await rejection(read(request, LIMITS, Date.now() - 1));
    expect([err.code, err.status, err.message]).toEqual(["PLT_REQUEST_TIMEOUT", 408, "request body not received in time"]);
  });
});
