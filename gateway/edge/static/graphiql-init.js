// Starts GraphiQL on deltagate's /graphql page. A file, not an inline script, so the page's
// Content-Security-Policy can allow scripts from the gateway's own origin only.
"use strict";

(function () {
  // `deltagate demo` prints links of the form /graphql?headers=<JSON, URL-encoded>: the
  // caller's Authorization and X-Matter-Code go into GraphiQL's headers editor.
  var params = new URLSearchParams(window.location.search);
  var headers = params.get("headers") || undefined;

  // Operations go by POST to the page's own URL (the gateway refuses them by GET).
  var fetcher = GraphiQL.createFetcher({ url: window.location.href.split("?")[0] });

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      headers: headers,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      // A bearer token stays where the caller put it (the link, the editor), never in the
      // browser's storage: officers share workstations.
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
    }),
  );
})();
