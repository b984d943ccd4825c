/**
 * Nodes of the compiled binary joined over a real Mosquitto with `--cluster` and `--node`: a node
 * killed with kill -9 is seen as gone by the others within a few seconds (its MQTT will), a request
 * another node was serving for it fails at once with a retryable 503 (not at its deadline), and a
 * `--cluster` that is not an MQTT URL is a config error naming the field.
 */
import { expect, test } from "bun:test";
import { runBinary, startBinary, type Running } from "../helpers/binary";
import { eventually } from "../helpers/mqtt";
import { mosquittoMissing, startMosquitto } from "../helpers/mosquitto";
import { writePlugins } from "../helpers/plugins";
import { tempDir } from "../helpers/tmp";

const missing = mosquittoMissing();

interface NodeInfo {
  node: string;
  state: string;
  services: string[];
}

const nodes = async (app: Running) => (await (await fetch(`${app.url}/api/platform/nodes`, { headers: { "x-api-key": app.adminKey } })).json()) as NodeInfo[];

test.skipIf(missing !== null)(`a node killed with kill -9 is seen as gone by the others within seconds, and what it was serving for them fails at once${missing ? ` (skipped: ${missing})` : ""}`, async () => {
  using dir = tempDir("plinth-e2e-cluster");
  const mosquitto = await startMosquitto(dir.path);
  try {
    writePlugins(dir.join("a/plugins"), { fixtures: ["emitter", "chain"] });
    writePlugins(dir.join("b/plugins"), {});
    await using a = await startBinary(dir.join("a"), ["--cluster", mosquitto.url, "--node", "a"]);
    await using b = await startBinary(dir.join("b"), ["--cluster", mosquitto.url, "--node", "b"]);
    expect(a.mqttUrl).toBe(mosquitto.url);
    const up = await eventually(async () => {
      const listed = await nodes(b);
      return listed.filter((n) => n.state === "up").length === 2 ? listed : null;
    }, 10_000);
    expect(up.find((n) => n.node === "a")!.services).toContain("emitter");
    // plinth status lists the nodes too.
    const shown = await runBinary(dir.path, ["status", "--url", b.url, "--key", b.adminKey]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^NODE\s+STATE\s+GATEWAY\s+SERVICES$/m);
    expect(shown.stdout).toMatch(new RegExp(`^a\\s+up\\s+${a.url.replaceAll(".", "\\.")}\\s+auth, chain, emitter, platform$`, "m"));
    expect(shown.stdout).toMatch(/^b\s+up\s+\S+\s+auth, platform$/m);

    // Through b to a: the chain's first step takes 300 ms on a, which dies meanwhile.
    const inFlight = fetch(`${b.url}/api/chain`);
    await Bun.sleep(100);
    a.proc.kill("SIGKILL");
    const killedAt = performance.now();
    const res = await inFlight;
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error).toEqual({ code: "PLT_SERVICE_UNAVAILABLE", message: 'node "a" left the cluster before answering' });
    expect(performance.now() - killedAt).toBeLessThan(3_000);
    const gone = await eventually(async () => (await nodes(b)).find((n) => n.node === "a" && n.state === "gone") ?? null, 5_000);
    expect(gone.node).toBe("a");
    expect(performance.now() - killedAt).toBeLessThan(5_000);
  } finally {
    mosquitto.proc.kill();
  }
});

test("--cluster that is not an MQTT URL stops the start with a config error naming cluster.url", async () => {
  using dir = tempDir("plinth-e2e-cluster-flag");
  const { code, stderr, stdout } = await runBinary(dir.path, ["run", "--cluster", "http://example.com", "--node", "a", "--port", "0"]);
  expect(code).not.toBe(0);
  expect(stderr + stdout).toContain("cluster.url");
});
