//! A faithful in-repo Clever simulator (OAuth + identity API) for tests and `demo`.
