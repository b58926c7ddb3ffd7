//! Test helpers for modular.
