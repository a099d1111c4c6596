"""HTTP routes, one module per resource; each maps HTTP to one or a few service calls."""
