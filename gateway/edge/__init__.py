"""The edge: the HTTP app and what stands between a request and the schema (auth, query and
rate limits, registered operations, documents, responses), settings and the CLI. The top
layer: it builds the gateway from settings and may import every layer below."""
