// `Tokenization` module: see docs/architecture.md.
