// Starts GraphiQL on this origin's /graphql (a file, not inline: the page's
// Content-Security-Policy allows scripts from this origin only). A token
// goes in the Headers tab: {"Authorization": "Bearer <token>"}.
window.addEventListener("load", function () {
  // Queries and mutations over HTTP; subscriptions need a graphql-ws
  // client (the UMD build has none): use one against ws(s)://<host>/graphql.
  var fetcher = GraphiQL.createFetcher({ url: new URL("/graphql", window.location.href).toString() });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true, isHeadersEditorEnabled: true })
  );
});
