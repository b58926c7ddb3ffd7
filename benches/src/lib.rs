//! Criterion benchmarks for modular live in `benches/benches/`.
