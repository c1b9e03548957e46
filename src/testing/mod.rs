//! Test support, behind the `sim` feature and hidden from the documentation: the invariants
//! the parsers keep ([`invariants`], shared by the property tests and the fuzz targets) and
//! throwaway Redis servers and Sentinels ([`redis`]). Not used by the gateway.

pub mod invariants;
pub mod redis;
