// Starts Swagger UI on the API's document (a file, not inline: the page's
// Content-Security-Policy allows scripts from this origin only).
window.onload = function () {
  window.ui = SwaggerUIBundle({ url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
};
