/**
 * The OpenAPI 3.1 document of every loaded plugin's routes, built from the
 * TypeBox schemas they declared (TypeBox emits JSON Schema, which OpenAPI 3.1
 * takes as is), and the docs page (Scalar, rendered by @elysiajs/openapi).
 * Plugins come and go at run time, so the document is rebuilt on request.
 */
import { ScalarRender } from "@elysiajs/openapi/scalar";
import type { Policy } from "../../config/fields";
import type { Config } from "../../config/schema";
import type { DeclaredRoute } from "../protocol";
import { VERSION } from "../version";
import type { Upstream } from "./upstream";

type Schema = { type?: string; properties?: Record<string, unknown>; required?: string[]; description?: string };

const ERROR = {
  type: "object",
  properties: { error: { type: "object", properties: { code: { type: "string" }, message: { type: "string" }, data: {} }, required: ["code", "message"] } },
};

export function openApiDocument(loader: Upstream, config: Readonly<Config>): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const service of [...loader.services.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const manifest = service.host.manifest;
    if (!manifest) continue;
    for (const route of manifest.routes) {
      const path = `/api/${service.name}${route.path === "/" ? "" : route.path}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      (paths[path] ??= {})[route.method.toLowerCase()] = operation(service.name, route, route.auth ?? config.auth.defaultPolicy);
    }
  }
  return {
    openapi: "3.1.0",
    info: { title: "Plinth API", version: VERSION, description: "Routes of every loaded service, served by the Plinth gateway." },
    paths,
    components: {
      schemas: { Error: ERROR },
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "A JWT, or an API key (plk_…)" },
        apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
      },
    },
  };
}

function operation(service: string, route: DeclaredRoute, policy: Policy): object {
  const schemas = route.schemas ?? {};
  const parameters = [
    ...parametersOf(schemas.params as Schema | undefined, "path", [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!)),
    ...parametersOf(schemas.query as Schema | undefined, "query", []),
  ];
  const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
  return {
    tags: [service],
    operationId: `${service}.${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+/g, "_")}`,
    ...(route.summary ? { summary: route.summary } : {}),
    ...(policy === "public" ? { security: [] } : { security: [{ bearer: [] }, { apiKey: [] }] }),
    ...(Array.isArray(policy) ? { "x-roles": policy } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(schemas.body ? { requestBody: { required: true, content: { "application/json": { schema: schemas.body } } } } : {}),
    responses: {
      "200": { description: "OK" },
      ...(schemas.body || parameters.length ? { "400": errorResponse("Invalid input (PLT_VALIDATION names the paths)") } : {}),
      ...(policy === "public" ? {} : { "401": errorResponse("Missing or invalid credentials"), "403": errorResponse("Role not allowed") }),
      ...(route.rateLimit ? { "429": errorResponse("Rate limited") } : {}),
    },
  };
}

/** Path parameters are named by the route even without a schema; query ones only by the schema. */
function parametersOf(schema: Schema | undefined, where: "path" | "query", names: string[]): object[] {
  const properties = schema?.properties ?? {};
  const all = new Set([...names, ...Object.keys(properties)]);
  return [...all].map((name) => ({
    name,
    in: where,
    required: where === "path" || (schema?.required ?? []).includes(name),
    schema: properties[name] ?? { type: "string" },
  }));
}

export function docsPage(specUrl: string): Response {
  const html = ScalarRender(
    { title: "Plinth API", version: VERSION },
    { url: specUrl, cdn: "https://cdn.jsdelivr.net/npm/@scalar/api-reference@1/dist/browser/standalone.min.js" },
  );
  return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
}
