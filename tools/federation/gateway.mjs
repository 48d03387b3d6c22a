// A real Apollo Federation v2 gateway over deltagate and other subgraphs, for tests/federation.
//
//   SUBGRAPHS='[{"name": "deltagate", "url": "http://127.0.0.1:8000/graphql"}, …]' \
//   SDL_AUTHORIZATION='Bearer …' node gateway.mjs
//
// It reads each subgraph's `_service { sdl }` (with SDL_AUTHORIZATION: deltagate answers
// authenticated callers only), composes the supergraph with @apollo/composition (and exits
// non-zero, printing why, if it does not compose), and serves it with @apollo/gateway on a
// free loopback port. Each caller's Authorization and X-Matter-Code headers are passed on to
// every subgraph request made for them, so deltagate decides, masks and audits as for a
// direct call. Prints "ready <url>" once listening; stops on SIGTERM.
import { composeServices } from "@apollo/composition";
import { ApolloGateway, RemoteGraphQLDataSource } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { parse } from "graphql";

const subgraphs = JSON.parse(process.env.SUBGRAPHS ?? "[]");
// The caller headers a subgraph needs to decide for the caller (lower case, as node gives them).
const FORWARDED = ["authorization", "x-matter-code"];

async function serviceSdl({ name, url }) {
  const headers = { "content-type": "application/json" };
  if (process.env.SDL_AUTHORIZATION) headers.authorization = process.env.SDL_AUTHORIZATION;
  const response = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ query: "{ _service { sdl } }" }),
  });
  const body = await response.json();
  if (!response.ok || body.errors || !body.data?._service?.sdl) {
    throw new Error(`${name}: no SDL (${response.status}): ${JSON.stringify(body)}`);
  }
  return body.data._service.sdl;
}

const services = [];
for (const subgraph of subgraphs) {
  services.push({ ...subgraph, typeDefs: parse(await serviceSdl(subgraph)) });
}
const composed = composeServices(services);
if (composed.errors) {
  for (const error of composed.errors) console.error(`composition: ${error.message}`);
  process.exit(2);
}

class ForwardingDataSource extends RemoteGraphQLDataSource {
  willSendRequest({ request, context }) {
    for (const name of FORWARDED) {
      const value = context.headers?.[name];
      if (typeof value === "string") request.http.headers.set(name, value);
    }
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: composed.supergraphSdl,
  buildService: ({ url }) => new ForwardingDataSource({ url }),
});
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, {
  listen: { port: 0, host: "127.0.0.1" },
  context: async ({ req }) => ({ headers: req.headers }),
});
console.log(`ready ${url}`);
process.on("SIGTERM", () => server.stop().then(() => process.exit(0)));
