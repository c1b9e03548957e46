//! clever-gateway: a reverse-proxy authentication gateway that signs users in with Clever and
//! forwards trusted identity headers to unmodified school web apps.

pub mod config;
pub mod demo_app;
pub mod identity;
pub mod sim;
