import { describe, expect, test } from "bun:test";
import { ErrorCode, PlinthError, fail, type WireError } from "../../runtime/errors";

describe("PlinthError", () => {
  test("a catalog code takes its status and retryability from the catalog", () => {
    const notFound = new PlinthError("PLT_NOT_FOUND", "no such order");
    expect(notFound.status).toBe(404);
    expect(notFound.retryable).toBe(false);

    const timeout = new PlinthError("PLT_TIMEOUT", "too slow");
    expect(timeout.status).toBe(504);
    expect(timeout.retryable).toBe(true);

    const open = new PlinthError("PLT_BREAKER_OPEN", "open");
    expect(open.status).toBe(503);
    expect(open.retryable).toBe(true);
  });

  test("every catalog entry is honoured", () => {
    for (const [code, entry] of Object.entries(ErrorCode)) {
      const err = new PlinthError(code, "m");
      expect([code, err.status, err.retryable]).toEqual([code, entry.status, entry.retryable]);
    }
  });

  test("a custom code defaults to status 500, not retryable", () => {
    const err = new PlinthError("ORDERS_OUT_OF_STOCK", "none left");
    expect(err.status).toBe(500);
    expect(err.retryable).toBe(false);
  });

  test("an explicit status and retryable win over the catalog", () => {
    const err = new PlinthError("PLT_NOT_FOUND", "gone", { status: 410, retryable: true });
    expect(err.status).toBe(410);
    expect(err.retryable).toBe(true);
    const custom = new PlinthError("ORDERS_CONFLICT", "taken", { status: 409 });
    expect(custom.status).toBe(409);
  });

  test("is an Error with name, code, message, data and cause", () => {
    const cause = new Error("root");
    const err = new PlinthError("PLT_INTERNAL", "wrapped", { data: { id: 7 }, cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("PlinthError");
    expect(err.code).toBe("PLT_INTERNAL");
    expect(err.message).toBe("wrapped");
    expect(err.data).toEqual({ id: 7 });
    expect(err.cause).toBe(cause);
  });

  test("without a cause option there is no cause", () => {
    expect(new PlinthError("PLT_INTERNAL", "x").cause).toBeUndefined();
  });

  test("toWire gives the plain shape; data only when present", () => {
    expect(new PlinthError("PLT_VALIDATION", "bad body").toWire()).toEqual({
      code: "PLT_VALIDATION",
      message: "bad body",
      status: 400,
      retryable: false,
    });
    expect("data" in new PlinthError("PLT_VALIDATION", "bad body").toWire()).toBe(false);
    expect(new PlinthError("PLT_VALIDATION", "bad body", { data: [{ path: "/x" }] }).toWire()).toEqual({
      code: "PLT_VALIDATION",
      message: "bad body",
      status: 400,
      retryable: false,
      data: [{ path: "/x" }],
    });
  });

  test("toWire survives JSON and fromWire restores an equal error", () => {
    const original = new PlinthError("ORDERS_CONFLICT", "taken", { status: 409, retryable: true, data: { sku: "A1" } });
    const wire = JSON.parse(JSON.stringify(original.toWire())) as WireError;
    const back = PlinthError.fromWire(wire);
    expect(back).toBeInstanceOf(PlinthError);
    expect(back.code).toBe("ORDERS_CONFLICT");
    expect(back.message).toBe("taken");
    expect(back.status).toBe(409);
    expect(back.retryable).toBe(true);
    expect(back.data).toEqual({ sku: "A1" });
    expect(back.toWire()).toEqual(original.toWire());
  });

  test("fromWire keeps the wire status even when it differs from the catalog", () => {
    const back = PlinthError.fromWire({ code: "PLT_TIMEOUT", message: "t", status: 502, retryable: false });
    expect(back.status).toBe(502);
    expect(back.retryable).toBe(false);
  });
});

describe("PlinthError.from", () => {
  test("returns a PlinthError unchanged", () => {
    const err = new PlinthError("PLT_NOT_FOUND", "x");
    expect(PlinthError.from(err)).toBe(err);
  });

  test("wraps an Error as PLT_HANDLER_ERROR keeping message and cause", () => {
    const cause = new TypeError("undefined is not a function");
    const err = PlinthError.from(cause);
    expect(err).toBeInstanceOf(PlinthError);
    expect(err.code).toBe("PLT_HANDLER_ERROR");
    expect(err.status).toBe(500);
    expect(err.message).toBe("undefined is not a function");
    expect(err.cause).toBe(cause);
  });

  test("wraps a thrown string or other value", () => {
    const fromString = PlinthError.from("just a string");
    expect(fromString.code).toBe("PLT_HANDLER_ERROR");
    expect(fromString.message).toBe("just a string");
    expect(fromString.cause).toBe("just a string");
    expect(PlinthError.from(42).message).toBe("42");
  });

  test("uses the fallback code when given", () => {
    const err = PlinthError.from(new Error("boom"), "PLT_INTERNAL");
    expect(err.code).toBe("PLT_INTERNAL");
    expect(PlinthError.from(new Error("slow"), "PLT_TIMEOUT").status).toBe(504);
  });
});

describe("fail", () => {
  test("throws the catalog error", () => {
    let caught: unknown;
    try {
      fail("PLT_BAD_JSON", "not json", { data: { at: 3 } });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(PlinthError);
    expect((caught as PlinthError).code).toBe("PLT_BAD_JSON");
    expect((caught as PlinthError).status).toBe(400);
    expect((caught as PlinthError).data).toEqual({ at: 3 });
  });
});
