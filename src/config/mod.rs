//! Configuration: the `gateway.toml` file, its validation, and the typed model.

pub mod model;
pub use model::*;
