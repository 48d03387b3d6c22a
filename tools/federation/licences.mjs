// A second, tiny federation subgraph beside deltagate, for tests/federation: a licensing
// office's register of enterprise-opening applications. It extends deltagate's LegalPerson
// (@key(fields: "uscc")) with a field of its own, licenceStatus, and points at deltagate's
// NaturalPerson by ID number; everything else about both comes from deltagate.
//
//   LICENCE_APPLICATIONS='[{"id": "A1", "uscc": "…", "contact": "…"}]' node licences.mjs
//
// Served by a plain node:http server on a free loopback port; prints "ready <url>" once
// listening, and stops on SIGTERM.
import { createServer } from "node:http";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { graphql, parse } from "graphql";

const applications = JSON.parse(process.env.LICENCE_APPLICATIONS ?? "[]");

const typeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key"])

  type Query {
    "Enterprise-opening applications waiting at the licensing office."
    openingApplications: [Application!]!
  }

  type Application {
    id: ID!
    applicant: LegalPerson!
    "The person who filed the application, as an ID number deltagate resolves."
    contact: NaturalPerson
  }

  type LegalPerson @key(fields: "uscc") {
    uscc: String
    "This office's own word on the enterprise's business licence."
    licenceStatus: String
  }

  type NaturalPerson @key(fields: "idNumber", resolvable: false) {
    idNumber: String
  }
`);

// A licence's status is this office's own data: derived from the code here, for the test.
function licenceStatus(uscc) {
  return uscc ? `LICENSED-${uscc.slice(-4)}` : null;
}

const resolvers = {
  Query: {
    openingApplications: () =>
      applications.map((a) => ({
        id: a.id,
        applicant: { uscc: a.uscc },
        contact: a.contact ? { idNumber: a.contact } : null,
      })),
  },
  LegalPerson: {
    __resolveReference: (reference) => ({ uscc: reference.uscc }),
    licenceStatus: (person) => licenceStatus(person.uscc),
  },
};

const schema = buildSubgraphSchema([{ typeDefs, resolvers }]);

const server = createServer((request, response) => {
  if (request.method !== "POST") {
    response.writeHead(405).end();
    return;
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", async () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      response.writeHead(400, { "content-type": "application/json" });
      response.end(JSON.stringify({ errors: [{ message: "the body is not JSON" }] }));
      return;
    }
    const result = await graphql({
      schema,
      source: body.query,
      variableValues: body.variables,
      operationName: body.operationName,
    });
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify(result));
  });
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  console.log(`ready http://127.0.0.1:${port}/graphql`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
