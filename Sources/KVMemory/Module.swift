// `KVMemory` module: see docs/architecture.md.
