"""The HTTP edge: app factory, middlewares and one module of routes per resource."""
