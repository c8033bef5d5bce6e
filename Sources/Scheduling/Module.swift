// `Scheduling` module: see docs/architecture.md.
