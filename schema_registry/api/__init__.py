"""HTTP layer: thin routers over RegistryService, plus error rendering, auth, forwarding and metrics."""
