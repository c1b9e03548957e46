//! clever-gateway: a reverse-proxy authentication gateway that signs users in with Clever and
//! forwards trusted identity headers to unmodified school web apps.
//!
//! The modules by layer, from the outside in:
//! - [`process`]: the running process (pingora server, listeners, TLS, reload, draining, logs,
//!   metrics, fatal errors);
//! - [`proxy`]: the pingora glue, which applies the decisions of
//! - [`gateway`]: what happens to one request, as plain functions (routing, the request's host,
//!   the gateway's own endpoints and pages, refusals, the header edits on the way upstream);
//! - [`auth`]: the login state machine, access policy, return paths, signed assertions;
//! - [`clever`]: every call to Clever; [`session`]: ids, records, cookies, the stores;
//!   [`identity`]: the signed-in user's record and the headers built from it;
//! - [`config`]: `gateway.toml`; [`secret`]: values never logged.
//!
//! With the `sim` feature (on by default: `clever-gateway demo` needs it): the Clever
//! simulator ([`sim`]), the demo ([`demo`]) and the test support ([`testing`]: the parser
//! invariants, throwaway Redis servers). A deployment can build without them
//! (`--no-default-features`).

pub mod auth;
pub mod clever;
pub mod config;
pub mod gateway;
pub mod identity;
pub mod process;
pub mod proxy;
pub mod secret;
pub mod session;

#[cfg(any(test, feature = "sim"))]
pub mod demo;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
#[cfg(any(test, feature = "sim"))]
#[doc(hidden)]
pub mod testing;
