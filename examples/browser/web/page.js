// The browser side: calls the greeter cross-origin with connect-web over Connect (unary and a
// server stream) and gRPC-Web (the same two), and an error case, then reports one line per
// check to the driver through window.__results. Bundled by esbuild with the code protoc-gen-es
// generated from examples/greeter/proto/greeter.proto.
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { Greeter } from "./gen/greeter_pb.js";

const api = new URL(location.href).searchParams.get("api");

async function check(name, run) {
  try {
    const detail = await run();
    return `ok   ${name}: ${detail}`;
  } catch (error) {
    return `FAIL ${name}: ${error}`;
  }
}

async function exercise(label, transport) {
  const client = createClient(Greeter, transport);
  const results = [];
  results.push(await check(`${label} unary`, async () => {
    const reply = await client.sayHello({ name: "Browser" }, { timeoutMs: 5000 });
    if (reply.message !== "Hello, Browser!") throw new Error(`unexpected ${reply.message}`);
    return reply.message;
  }));
  results.push(await check(`${label} server stream`, async () => {
    const got = [];
    for await (const reply of client.sayHelloRepeatedly({ name: "Tab", times: 3 })) {
      got.push(reply.message);
    }
    if (got.length !== 3) throw new Error(`got ${got.length} messages`);
    return got.join(" | ");
  }));
  results.push(await check(`${label} error`, async () => {
    try {
      await client.sayHello({ name: "" });
    } catch (error) {
      const e = ConnectError.from(error);
      if (e.code !== Code.InvalidArgument) throw new Error(`code ${Code[e.code]}: ${e.rawMessage}`);
      return `invalid_argument: ${e.rawMessage}`;
    }
    throw new Error("no error");
  }));
  return results;
}

(async () => {
  const lines = [];
  lines.push(...await exercise("connect", createConnectTransport({ baseUrl: api })));
  lines.push(...await exercise("connect-get", createConnectTransport({ baseUrl: api, useHttpGet: true })));
  lines.push(...await exercise("grpc-web", createGrpcWebTransport({ baseUrl: api })));
  window.__results = lines;
})();
