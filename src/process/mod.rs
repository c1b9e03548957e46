//! The process around the request path: building and running the pingora server
//! ([`server`]), its listening sockets ([`listeners`]) and TLS material ([`tls`]), `reload`
//! ([`reload`]), requests in flight, draining and the pid file ([`lifecycle`]), the log writer
//! and format ([`logbuf`], [`logfmt`]), the Prometheus metrics ([`metrics`]) and why a start
//! failed ([`fatal`]).

pub mod fatal;
pub mod lifecycle;
pub(crate) mod listeners;
pub mod logbuf;
pub mod logfmt;
pub mod metrics;
pub mod reload;
pub mod server;
pub(crate) mod tls;
