//! clever-gateway: a reverse-proxy authentication gateway that signs users in with Clever and
//! forwards trusted identity headers to unmodified school web apps.

pub mod auth;
pub mod clever;
pub mod config;
pub mod demo_app;
pub mod identity;
pub mod pages;
pub mod routing;
pub mod secret;
pub mod session;
pub mod sim;
pub mod gateway;
pub mod proxy;
pub mod server;
pub mod demo;
