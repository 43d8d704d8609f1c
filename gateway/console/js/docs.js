// Swagger UI over the merged document: a file of its own because the page's CSP allows no inline script.
window.ui = window.SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.url,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null, // the public validator is a remote service: none on a police network
});
