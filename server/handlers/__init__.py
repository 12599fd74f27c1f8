"""Request handlers, one module per area. Each parses, calls the core, serializes."""
