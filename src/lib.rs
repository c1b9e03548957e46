//! clever-gateway: a reverse-proxy authentication gateway that signs users in with Clever and
//! forwards trusted identity headers to unmodified school web apps.

pub mod assertion;
pub mod auth;
pub mod check_online;
pub mod clever;
pub mod config;
pub mod demo;
pub mod demo_app;
pub mod fatal;
pub mod gateway;
pub mod https;
pub mod identity;
#[doc(hidden)]
pub mod invariants;
pub mod lifecycle;
pub mod listeners;
pub mod logbuf;
pub mod logfmt;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod refusal;
pub mod reload;
pub mod routing;
pub mod secret;
pub mod server;
pub mod session;
pub mod sim;
pub mod tls;
