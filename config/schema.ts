/**
 * The platform config schema (TypeBox) with a default for every field.
 * Unknown fields are rejected so that a typo is an error, not a silent no-op.
 */
import { Type as t, type Static } from "@sinclair/typebox";
import { BreakerOverride, Policy, breakerFields, rateLimit } from "./fields";

/** broker.maxQueuedPerClient when not set. */
export const DEFAULT_MAX_QUEUED_PER_CLIENT = 1000;
const port = (d: number) => t.Integer({ minimum: 0, maximum: 65535, default: d });
const ms = (d: number, minimum = 1) => t.Integer({ minimum, default: d });
const section = <T extends Parameters<typeof t.Object>[0]>(props: T) =>
  t.Object(props, { additionalProperties: false, default: {} });

export const ConfigSchema = t.Object(
  {
    gateway: section({
      host: t.String({ minLength: 1, default: "127.0.0.1" }),
      port: port(3000),
      /** Largest accepted request body; larger bodies get 413 PLT_BODY_TOO_LARGE. */
      maxBodyBytes: t.Integer({ minimum: 1, default: 1024 * 1024 }),
      /**
       * Deepest nesting (arrays and objects inside one another) of a JSON request body; deeper gets
       * 400 PLT_BAD_JSON before it is parsed (a deep value would overflow every recursive walk after).
       */
      // At most 512: values crossing to a worker may nest 1,000 levels, envelope included.
      maxJsonDepth: t.Integer({ minimum: 1, maximum: 512, default: 64 }),
      /** Time a gateway request may take end to end (504 PLT_TIMEOUT after). */
      requestTimeoutMs: ms(30_000),
      /**
       * Per route (`"GET /api/orders/:id"`, as the route is declared): the answer to give when the
       * service fails (5xx, timeout, open breaker, full bulkhead) instead of the error.
       */
      fallbacks: t.Record(
        t.String({ pattern: "^[A-Z]+ /api/" }),
        t.Object(
          {
            status: t.Integer({ minimum: 200, maximum: 599, default: 200 }),
            body: t.Unknown(),
            // Optional: TypeBox fills no defaults inside a Record's values.
            headers: t.Optional(t.Record(t.String(), t.String())),
          },
          { additionalProperties: false },
        ),
        { default: {}, additionalProperties: false },
      ),
      /** Token bucket per caller (identity, or IP when anonymous) and route; limit 0 turns it off. */
      rateLimit: rateLimit({ default: { limit: 0, windowMs: 1_000 } }),
      /** Per route (`"GET /api/orders"`), overriding `rateLimit` and the plugin's own setting. */
      rateLimits: t.Record(t.String({ pattern: "^[A-Z]+ /api/" }), rateLimit(), { default: {} }),
      /** Most callers whose buckets are remembered (least recently seen dropped first). */
      rateLimitKeys: t.Integer({ minimum: 1, default: 10_000 }),
      /** Response cache of GET routes that declare `cache`: most entries and total body bytes kept (LRU). */
      cache: section({
        maxEntries: t.Integer({ minimum: 0, default: 1_000 }),
        maxBytes: t.Integer({ minimum: 0, default: 16 * 1024 * 1024 }),
      }),
      /** CORS: origins allowed to call the API from a browser ("*" for any); none by default. */
      cors: section({
        origins: t.Array(t.String({ minLength: 1 }), { default: [] }),
        /** Allow cookies / Authorization from those origins (never with "*"). */
        credentials: t.Boolean({ default: false }),
        maxAgeSeconds: t.Integer({ minimum: 0, default: 600 }),
      }),
      /** Serve the OpenAPI document at /openapi.json and its docs page at /docs. */
      openapi: t.Boolean({ default: true }),
    }),
    auth: section({
      /**
       * Who may call a route that does not say: "public" (anyone), "authenticated" (any valid
       * token or API key), or a list of roles. Secure by default.
       */
      defaultPolicy: Policy("authenticated"),
      /** JSON Web Tokens in `Authorization: Bearer <jwt>`, verified with one of these keys. */
      jwt: section({
        /** HS256 shared secret (at least 32 characters). */
        secret: t.Optional(t.String({ minLength: 32 })),
        /** PEM file with an RS256 or ES256 public key (SPKI). */
        publicKeyFile: t.Optional(t.String({ minLength: 1 })),
        /** JSON Web Key Set file (`{ "keys": [...] }`); the token's `kid` picks the key. */
        jwksFile: t.Optional(t.String({ minLength: 1 })),
        /** Accepted algorithms; "none" is never accepted. */
        algorithms: t.Array(t.Union([t.Literal("HS256"), t.Literal("RS256"), t.Literal("ES256")]), {
          minItems: 1,
          default: ["HS256", "RS256", "ES256"],
        }),
        issuer: t.Optional(t.String()),
        audience: t.Optional(t.String()),
        /** Claim holding the caller's roles (an array of strings, or one string). */
        rolesClaim: t.String({ minLength: 1, default: "roles" }),
        /** Seconds of clock skew allowed on `exp` and `nbf`. */
        clockToleranceSeconds: t.Integer({ minimum: 0, default: 5 }),
      }),
      mqtt: section({
        /** Let MQTT clients connect without credentials (as role "anonymous"). */
        anonymous: t.Boolean({ default: false }),
        /**
         * Serve `POST /broker/authenticate` and `POST /broker/authorize` on the gateway, for an outside
         * broker (EMQX's HTTP authentication and authorization, mosquitto-go-auth's HTTP backend) to check
         * API keys, JWTs and this ACL. Its requests must carry an API key with role "broker".
         */
        brokerHook: t.Boolean({ default: false }),
        /**
         * Topic filters each role may publish and subscribe to. `%u` is replaced by the
         * identity (key name or token subject), `%c` by the client id. A role without an entry
         * may do nothing; platform namespaces (`events/`, `$platform/`, `$SYS/`) stay read-only.
         * `deny` refuses filters inside what is allowed (runtime/broker/acl-rules.ts).
         */
        acl: t.Record(
          t.String({ minLength: 1 }),
          t.Object(
            {
              publish: t.Array(t.String(), { default: [] }),
              subscribe: t.Array(t.String(), { default: [] }),
              /**
               * Filters refused even where an allow filter above covers them (`secrets/#`). The most
               * specific filter decides (most literal levels: neither `+` nor `#`); a deny wins a tie.
               */
              deny: t.Optional(
                t.Object(
                  { publish: t.Array(t.String(), { default: [] }), subscribe: t.Array(t.String(), { default: [] }) },
                  { additionalProperties: false },
                ),
              ),
            },
            { additionalProperties: false },
          ),
          { default: { admin: { publish: ["#"], subscribe: ["#", "$SYS/#", "$platform/#"] }, anonymous: { publish: ["#"], subscribe: ["#", "$SYS/#", "$platform/#"] } } },
        ),
      }),
    }),
    broker: section({
      host: t.String({ minLength: 1, default: "127.0.0.1" }),
      /** MQTT over TCP. */
      port: port(1883),
      /** Path that serves MQTT over WebSocket (on the gateway's port, or on `websocketPort`); "" turns it off. */
      websocketPath: t.String({ pattern: "^(/.*)?$", default: "/mqtt" }),
      /**
       * MQTT over WebSocket on a port of its own (on `host`), served by the broker's thread: its frames do
       * not pass through the gateway's thread. Unset: on the gateway's port. 0 picks a free port.
       */
      websocketPort: t.Optional(t.Integer({ minimum: 0, maximum: 65535 })),
      /**
       * Where retained messages, persistent sessions (clean: false) and their queued QoS 1/2 messages are kept:
       * "sqlite" (`<data.dir>/_broker.sqlite`, kept across restarts and crashes) or "memory" (lost on exit).
       */
      persistence: t.Union([t.Literal("sqlite"), t.Literal("memory")], { default: "sqlite" }),
      /**
       * QoS 1/2 messages queued per persistent session; past that the oldest are dropped and counted
       * (`$SYS/broker/store/messages/dropped`).
       */
      maxQueuedPerClient: t.Integer({ minimum: 1, default: DEFAULT_MAX_QUEUED_PER_CLIENT }),
      /** Largest MQTT packet a client may send (fixed header included); a larger one disconnects it. */
      maxPacketBytes: t.Integer({ minimum: 256, maximum: 268_435_460, default: 1024 * 1024 }),
      /**
       * Bytes waiting to be sent to one connected client, TCP, TLS or WebSocket (it reads slower than it
       * is sent to). Beyond this, QoS 0 messages to it are dropped and counted (`$SYS/broker/messages/dropped`);
       * QoS 1/2 messages are still queued, and at 8 times this the client is disconnected as a slow
       * consumer (`$SYS/broker/clients/slow`). 0: no bound.
       */
      maxQueuedBytesPerClient: t.Integer({ minimum: 0, default: 1024 * 1024 }),
      /** MQTT connections (TCP, TLS and WebSocket) at once; more are refused with CONNACK 3. 0: no limit. */
      maxConnections: t.Integer({ minimum: 0, default: 0 }),
      /** How often the `$SYS/broker/...` statistics are published (retained); 0 turns them off. */
      sysIntervalMs: t.Integer({ minimum: 0, default: 10_000 }),
      /** MQTT over TLS on its own port (on `host`): PEM certificate chain and private key files. */
      tls: t.Optional(
        t.Object({ port: port(8883), cert: t.String({ minLength: 1 }), key: t.String({ minLength: 1 }) }, { additionalProperties: false }),
      ),
    }),
    plugins: section({
      dir: t.String({ minLength: 1, default: "./plugins" }),
      /** Watch the folder: add, replace and remove plugins while serving (turn off with --no-watch). */
      watch: t.Boolean({ default: true }),
      /** Per-plugin configuration, handed to the plugin as `ctx.config`. */
      config: t.Record(t.String(), t.Unknown(), { default: {} }),
    }),
    data: section({
      /** Each service keeps `<dir>/<service>.sqlite`. */
      dir: t.String({ minLength: 1, default: "./data" }),
      /**
       * How often a thread of its own checkpoints every database's WAL, so that writers never stop
       * for it (they do only past 10,000 pages, a fallback); 0: off (each connection checkpoints
       * itself every 1,000 pages, SQLite's default).
       */
      checkpointMs: t.Integer({ minimum: 0, default: 100 }),
      /**
       * What an acknowledged write survives (every service file, the outbox and the broker's store):
       * "full" (default) a process crash, an OS crash or power loss, the file system going read-only:
       * each commit is on disk before it is acknowledged (group commit shares one fsync among many);
       * "normal" a process crash only (SQLite's synchronous=NORMAL in WAL mode).
       */
      durability: t.Union([t.Literal("full"), t.Literal("normal")], { default: "full" }),
      /**
       * At start every store gets `PRAGMA quick_check` if its file is at most this big (larger ones
       * are logged as not checked and left to `plinth check`): a damaged file fails its service at
       * load. About 0.5 s for 256 MiB, 2 to 4 s for 1 GiB (BENCHMARKS.md). 0: no check at start.
       */
      quickCheckMaxBytes: t.Integer({ minimum: 0, default: 256 * 1024 * 1024 }),
    }),
    calls: section({
      /** Default timeout of a service-to-service call (within the caller's own deadline). */
      timeoutMs: ms(5_000),
      /** Retries of a failed call to an action declared `idempotent`, never past the deadline. */
      retries: t.Integer({ minimum: 0, default: 2 }),
      /** First retry delay; doubles per retry, with ±50% jitter. */
      retryDelayMs: ms(50, 0),
    }),
    bulkhead: section({
      /** Calls (HTTP and actions) running at once in one service: the ceiling of its adaptive limit... */
      maxConcurrent: t.Integer({ minimum: 1, default: 256 }),
      /** ...and waiting behind them (a bound on memory: more get 503 PLT_BULKHEAD_FULL at once; the wait is bounded by maxQueueMs). */
      maxQueue: t.Integer({ minimum: 0, default: 10_000 }),
      /** The limit follows what the service sustains (between minConcurrent and maxConcurrent); false: fixed at maxConcurrent. */
      adaptive: t.Boolean({ default: true }),
      /** The floor of the adaptive limit. */
      minConcurrent: t.Integer({ minimum: 1, default: 4 }),
      /** The longest a call waits for a slot: then (or when it could no longer finish by its deadline) 503 PLT_BULKHEAD_FULL with Retry-After. */
      maxQueueMs: ms(1_000),
    }),
    events: section({
      /** Published events each service keeps in its outbox table as its event log. */
      retainSent: t.Integer({ minimum: 0, default: 10_000 }),
      /** ...none committed longer ago than this (default 7 days). Unsent events are always kept. */
      retainSentMs: ms(7 * 24 * 3600 * 1000, 0),
      /** Attempts a subscription handler gets for one event before it is dead-lettered. */
      maxAttempts: t.Integer({ minimum: 1, default: 5 }),
      /** Delay before the first retry; doubles per attempt (at most 30 s). */
      retryDelayMs: ms(200, 0),
    }),
    breaker: section({
      ...breakerFields(true),
      /** Per target service: `{ orders: { failureRate: 0.2 } }`; overrides the plugin's own `breaker`. */
      services: t.Record(t.String(), BreakerOverride, { default: {} }),
      /** Per action, with a breaker of its own: `{ "inventory.reserve": { slowCallMs: 200 } }`. */
      actions: t.Record(t.String(), BreakerOverride, { default: {} }),
    }),
    workers: section({
      /** First restart delay after a crash; doubles on each crash in a row. */
      restartDelayMs: ms(100, 0),
      /** Crashes in a row after which a service is marked failed and left stopped. */
      maxRestarts: t.Integer({ minimum: 0, default: 5 }),
      /** Time a plugin has to load, migrate and report ready. */
      startTimeoutMs: ms(10_000),
      /** How often the host pings each worker. */
      heartbeatMs: ms(1_000),
      /** A worker that has not answered a ping for this long (e.g. stuck in a loop) is terminated and restarted. */
      heartbeatTimeoutMs: ms(5_000),
      /** A worker whose JS heap grows past this (a leak, say) is terminated and restarted; 0: no limit. */
      maxHeapBytes: t.Integer({ minimum: 0, default: 512 * 1024 * 1024 }),
      /**
       * How long (ms, fractions allowed) a worker may gather synchronous handlers into one commit
       * (group commit; replies wait for it). 0: every handler commits alone.
       */
      groupCommitMs: t.Number({ minimum: 0, maximum: 100, default: 0.2 }),
    }),
    log: section({
      level: t.Union([t.Literal("debug"), t.Literal("info"), t.Literal("warn"), t.Literal("error"), t.Literal("silent")], {
        default: "info",
      }),
      format: t.Union([t.Literal("pretty"), t.Literal("json")], { default: "pretty" }),
    }),
    shutdown: section({
      /** Time in-flight requests get to finish on SIGINT/SIGTERM. */
      graceMs: ms(10_000, 0),
    }),
    /**
     * Run as one node of a cluster over an outside MQTT broker (Mosquitto, EMQX, VerneMQ, HiveMQ) instead
     * of the embedded one. Unset: one node, the embedded broker.
     */
    cluster: t.Optional(
      t.Object(
        {
          /** The broker: mqtt://host:port or mqtts://host:port. */
          url: t.String({ pattern: "^mqtts?://[^\\s/]+(:[0-9]+)?/?$" }),
          /** This node's name, unique in the cluster: letters, digits, `_ -` (a breaker per instance is `<service>@<node>`). */
          node: t.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" }),
          /** The cluster's own topics live under this prefix, so that two clusters can share a broker. */
          prefix: t.String({ pattern: "^[A-Za-z0-9_.-]{1,64}$", default: "plinth" }),
          username: t.Optional(t.String()),
          password: t.Optional(t.String()),
          /** PEM files for mqtts://: the CA to trust, and this node's certificate and key (mutual TLS). */
          ca: t.Optional(t.String({ minLength: 1 })),
          cert: t.Optional(t.String({ minLength: 1 })),
          key: t.Optional(t.String({ minLength: 1 })),
          /** How often a node says it is alive, and what it hosts (also on every change). */
          announceMs: ms(5_000, 100),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
