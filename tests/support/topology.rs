//! A test's own topology: random topic and queue names, written to a
//! temporary `topology.toml` and applied with the real `hookfleet` binary.
