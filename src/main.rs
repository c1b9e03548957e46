//! The `clever-gateway` command: `run`, `check`, `reload` and `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use clever_gateway::config;
use clever_gateway::process::fatal;
use clever_gateway::process::server::RunMode;
use clever_gateway::secret::Secret;

/// jemalloc instead of glibc's allocator: fewer instructions per allocation on the request
/// path and no per-chunk header on the session store's small objects (see Cargo.toml).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "clever-gateway",
    version,
    about = "Clever sign-in in front of school web apps"
)]
struct Cli {
    /// Path to gateway.toml (`run` is the default command when only this is given).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Log format (overrides `log_format` in the config file; default human).
    #[arg(long, value_enum, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Run {
        /// Run in the background: returns once the config is valid and the listen addresses
        /// free; the daemon writes server.pid_file (systemd: Type=forking, PIDFile= that).
        #[arg(long)]
        daemon: bool,
        /// Take the listening sockets over from the running gateway, which must then be sent
        /// SIGQUIT (`clever-gateway reload` does both).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate the configuration and print the routes.
    Check {
        /// Also ask Clever (or the simulator the config points at): are the client id and
        /// secret accepted, does each district-app token work, does each district have Secure
        /// Sync, is the redirect URI https? Prints a table; exits 1 on any failure.
        #[arg(long)]
        online: bool,
    },
    /// Replace the running gateway with one that reads the (changed) configuration, without
    /// dropping connections. Validates first: a bad file changes nothing (exit 2).
    Reload,
    /// Try it out: Clever simulator + sample app + gateway on loopback.
    #[cfg(feature = "sim")]
    Demo {
        /// Port for the gateway (another free port is used if it is taken).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

impl From<LogFormat> for config::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Human => config::LogFormat::Human,
            LogFormat::Json => config::LogFormat::Json,
        }
    }
}

/// Logs go to stderr: human lines (colored only on a terminal) or one JSON object per line with
/// the event's fields, and those of the request span it is written in (its `request_id`), at
/// the top level. Pingora's own `log` records are included.
fn init_logging(format: config::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = clever_gateway::process::logbuf::BatchedStderr::new();
    match format {
        config::LogFormat::Human => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .event_format(clever_gateway::process::logfmt::HumanFormat::default())
            .init(),
        config::LogFormat::Json => {
            let mut json = json_subscriber::JsonLayer::new(writer);
            json.with_timer("timestamp", clever_gateway::process::logfmt::Rfc3339Micros)
                .with_level("level")
                .with_target("target")
                .with_flattened_event()
                .with_top_level_flattened_current_span();
            tracing_subscriber::registry()
                .with(filter)
                .with(json)
                .init();
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format.map(config::LogFormat::from);
    match cli.command {
        #[cfg(feature = "sim")]
        Some(Command::Demo { port }) => {
            let format = fatal::format_for(log_format, None);
            init_logging(format);
            match clever_gateway::demo::run(port) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    fatal::report(format, format_args!("clever-gateway demo: {e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Check { online }) => {
            with_config(cli.config, log_format, move |path, cfg, _| {
                check(path, cfg, online)
            })
        }
        Some(Command::Reload) => {
            let flag = cli.log_format;
            with_config(cli.config, log_format, move |path, cfg, _| {
                reload(path, cfg, flag)
            })
        }
        Some(Command::Run { daemon, upgrade }) => {
            let mode = RunMode { daemon, upgrade };
            with_config(cli.config, log_format, |path, cfg, format| {
                run(path, cfg, mode, format)
            })
        }
        None => with_config(cli.config, log_format, |path, cfg, format| {
            run(path, cfg, RunMode::default(), format)
        }),
    }
}

/// Loads the config, then starts logging in the format the command line or the file asks for,
/// then runs `f` with that format. Config errors come before the file's `log_format` is known:
/// plain lines, or JSON lines (one per problem) when `--log-format json` was given.
fn with_config(
    path: Option<PathBuf>,
    log_format: Option<config::LogFormat>,
    f: impl FnOnce(PathBuf, config::Config, config::LogFormat) -> ExitCode,
) -> ExitCode {
    let early = fatal::format_for(log_format, None);
    let Some(path) = path else {
        fatal::report(
            early,
            "clever-gateway: --config FILE is required (try `clever-gateway demo` for a local \
             try-out)",
        );
        return ExitCode::from(2);
    };
    match config::load(&path) {
        Ok(cfg) => {
            let format = fatal::format_for(log_format, Some(cfg.server.log_format));
            init_logging(format);
            f(path, cfg, format)
        }
        Err(errors) => {
            for problem in &errors.problems {
                fatal::report(early, problem);
            }
            fatal::report(
                early,
                format_args!(
                    "clever-gateway: {} has errors; nothing started",
                    path.display()
                ),
            );
            ExitCode::from(2)
        }
    }
}

fn check(path: PathBuf, cfg: config::Config, online: bool) -> ExitCode {
    if let Err(e) = config::read_secret(&cfg.clever.client_secret) {
        eprintln!("warning: {e} (run will refuse to start until it is readable)");
    }
    for d in &cfg.districts {
        if let Err(e) = config::read_secret(&d.token) {
            eprintln!(
                "warning: district-app token of district {} ({}): {e} (run will refuse to start \
                 until it is readable)",
                d.id, d.name
            );
        }
    }
    if let Some(a) = &cfg.assertion {
        for e in clever_gateway::auth::assertion::check_key_files(a) {
            eprintln!("warning: {e} (run will refuse to start until it is readable)");
        }
    }
    if let Some(src) = &cfg.session.redis_password {
        if let Err(e) = config::read_secret(src) {
            eprintln!(
                "warning: Redis password: {e} (run will refuse to start until it is readable)"
            );
        }
    }
    if let Some(config::RedisTarget::Sentinel(t)) = &cfg.session.redis {
        if let Some(Err(e)) = t.password.as_ref().map(config::read_secret) {
            eprintln!(
                "warning: Redis Sentinels' password: {e} (run will refuse to start until it is \
                 readable)"
            );
        }
    }
    if let Some(src) = &cfg.server.forward_auth_secret {
        if let Err(e) = config::read_secret(src) {
            eprintln!(
                "warning: server.forward_auth_secret: {e} (run will refuse to start until it is \
                 readable)"
            );
        }
    }
    println!("{}: ok", path.display());
    print!("{}", config::describe_routes(&cfg));
    print!("{}", config::describe_session(&cfg));
    if !online {
        return ExitCode::SUCCESS;
    }
    println!();
    println!(
        "online check against {} and {}:",
        cfg.clever.token_url, cfg.clever.api_base
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clever-gateway check: cannot start the online check: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(clever_gateway::clever::check_online::check_online(&cfg));
    print!("{}", report.render());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn reload(path: PathBuf, cfg: config::Config, log_format: Option<LogFormat>) -> ExitCode {
    // The new process reads the secrets from this environment: fail here, not halfway.
    if let Err(e) = config::read_secret(&cfg.clever.client_secret) {
        eprintln!("clever-gateway reload: {e}; the running gateway was not touched");
        return ExitCode::from(2);
    }
    for d in &cfg.districts {
        if let Err(e) = config::read_secret(&d.token) {
            eprintln!(
                "clever-gateway reload: district-app token of district {} ({}): {e}; the running \
                 gateway was not touched",
                d.id, d.name
            );
            return ExitCode::from(2);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("clever-gateway reload: cannot find this program's path: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut extra_args = Vec::new();
    if let Some(format) = log_format {
        extra_args.push("--log-format".into());
        extra_args.push(
            match format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            }
            .into(),
        );
    }
    let plan = clever_gateway::process::reload::Plan {
        exe,
        config_path: path,
        server: cfg.server,
        extra_args,
        limits: Default::default(),
    };
    match clever_gateway::process::reload::reload(&plan, |step| {
        eprintln!("clever-gateway reload: {step}")
    }) {
        Ok(done) => {
            println!(
                "reloaded: pid {} serves {} (pid {} finished its requests and exited; took {})",
                done.new_pid,
                plan.config_path.display(),
                done.old_pid,
                humantime::format_duration(Duration::from_millis(done.took.as_millis() as u64))
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clever-gateway reload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the gateway; a failure to start is reported in the log format (`format`).
fn run(_path: PathBuf, cfg: config::Config, mode: RunMode, format: config::LogFormat) -> ExitCode {
    let secret = match config::read_secret(&cfg.clever.client_secret) {
        Ok(s) => Secret::new(s),
        Err(e) => {
            fatal::report(format, format_args!("clever-gateway: {e}"));
            return ExitCode::from(2);
        }
    };
    match clever_gateway::process::server::serve(Arc::new(cfg), secret, mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            fatal::report(format, format_args!("clever-gateway: {e}"));
            ExitCode::from(2)
        }
    }
}
