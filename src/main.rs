//! The `clever-gateway` command: `run`, `check` and `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use clever_gateway::config;
use clever_gateway::secret::Secret;

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
    /// Log format.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Run,
    /// Validate the configuration and print the routes.
    Check,
    /// Try it out: Clever simulator + sample app + gateway on loopback.
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Some(Command::Demo { port }) => match clever_gateway::demo::run(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("clever-gateway demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Check) => with_config(cli.config, check),
        Some(Command::Run) | None => with_config(cli.config, run),
    }
}

fn with_config(path: Option<PathBuf>, f: fn(PathBuf, config::Config) -> ExitCode) -> ExitCode {
    let Some(path) = path else {
        eprintln!("clever-gateway: --config FILE is required (try `clever-gateway demo` for a local try-out)");
        return ExitCode::from(2);
    };
    match config::load(&path) {
        Ok(cfg) => f(path, cfg),
        Err(errors) => {
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            eprintln!(
                "clever-gateway: {} has errors; nothing started",
                path.display()
            );
            ExitCode::from(2)
        }
    }
}

fn check(path: PathBuf, cfg: config::Config) -> ExitCode {
    if let Err(e) = config::read_secret(&cfg.clever.client_secret) {
        eprintln!("warning: {e} (run will refuse to start until it is readable)");
    }
    if let Some(src) = &cfg.session.redis_password {
        if let Err(e) = config::read_secret(src) {
            eprintln!(
                "warning: Redis password: {e} (run will refuse to start until it is readable)"
            );
        }
    }
    println!("{}: ok", path.display());
    print!("{}", config::describe_routes(&cfg));
    ExitCode::SUCCESS
}

fn run(_path: PathBuf, cfg: config::Config) -> ExitCode {
    let secret = match config::read_secret(&cfg.clever.client_secret) {
        Ok(s) => Secret::new(s),
        Err(e) => {
            eprintln!("clever-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    match clever_gateway::server::build_server(Arc::new(cfg), secret) {
        Ok(server) => {
            clever_gateway::server::run(server);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clever-gateway: {e}");
            ExitCode::from(2)
        }
    }
}
