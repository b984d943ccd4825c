/** Baseline: bare aedes (the version Plinth embeds) on node:net, nothing else. */
import { createServer } from "node:net";
import { Aedes } from "aedes";

const aedes = await Aedes.createBroker();
const server = createServer(aedes.handle);
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(`listening mqtt://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`);
});
