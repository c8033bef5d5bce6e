// `Engine` module: see docs/architecture.md.
