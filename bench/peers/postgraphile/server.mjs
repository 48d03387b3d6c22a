// PostGraphile 5 over one region's native tables: the peer a province would
// otherwise pick for a single-region look-up API (bench/README.md).
//
// The Amber preset, as its documentation starts a project, with two smart tags:
// the seeded tables have unique indexes but no primary keys, and PostGraphile
// only offers a look-up by a key it knows, so `@primaryKey` names the key of
// the persons (rk_jbxx.gmsfhm) and of the enterprises (fr_jbxx.tyshxydm).
// One process, one pg pool as large as the gateway's, no GraphiQL, no watch
// mode, no authentication (PostGraphile has no policy, masking or audit log).
//
// Run: DATABASE_URL=postgresql://... node server.mjs --port 8002 (or PORT=8002)
// /graphql answers GraphQL; /healthz answers 200 once the schema is built.

import { createServer } from "node:http";

import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  console.error("DATABASE_URL is required");
  process.exit(2);
}
const host = process.env.HOST ?? "127.0.0.1";
const portFlag = process.argv.indexOf("--port");
const port = Number(portFlag > 0 ? process.argv[portFlag + 1] : (process.env.PORT ?? "8002"));
const poolMax = Number(process.env.POOL_MAX ?? "10");

const primaryKeys = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      rk_jbxx: { tags: { primaryKey: "gmsfhm" } },
      fr_jbxx: { tags: { primaryKey: "tyshxydm" } },
    },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [primaryKeys],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      poolConfig: { max: poolMax, application_name: "postgraphile" },
    }),
  ],
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
// Built before /healthz says ready, so no timed request pays for the introspection.
await pgl.getSchemaResult();

// Our own request listener in front of grafserv's, so /healthz and /graphql share a port
// (grafserv's addTo would answer /healthz with a 404 of its own).
const graphql = serv.createHandler();
const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  graphql(req, res, () => {
    res.writeHead(404);
    res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, host, () => console.log(`postgraphile on http://${host}:${port}/graphql`));

const stop = () => {
  server.close();
  pgl.release().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
