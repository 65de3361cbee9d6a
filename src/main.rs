//! The `threadline` binary: `serve` runs the store; `sql`, `query` and `trace` ask a
//! running server; `generate` fills one with correlated telemetry.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use threadline::cli::{Client, Credentials};
use threadline::config::{Config, RawConfig};
use threadline::generate::{self, push::Run};
use threadline::ingest::now_ns;
use threadline::logql::parse_duration;
use threadline::query::time::parse_time;
use threadline::server::Server;

#[derive(Parser)]
#[command(
    name = "threadline",
    version,
    about = "A log-structured, index-free correlation store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ClientArgs {
    /// The server to ask.
    #[arg(long, env = "THREADLINE_URL", default_value = "http://127.0.0.1:4318")]
    url: String,
    /// Tenant (sent as X-Scope-OrgID).
    #[arg(long, env = "THREADLINE_TENANT")]
    tenant: Option<String>,
    /// Bearer token, for a server with [auth] tokens.
    #[arg(long, env = "THREADLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ClientArgs {
    fn credentials(&self) -> Credentials {
        Credentials {
            tenant: self.tenant.clone(),
            token: self.token.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// TOML config file; flags and THREADLINE_* variables override it.
        #[arg(long, env = "THREADLINE_CONFIG")]
        config: Option<PathBuf>,
        /// Log lines as text, or as one JSON object each (for log shippers).
        #[arg(
            long,
            env = "THREADLINE_LOG_FORMAT",
            value_enum,
            default_value = "text"
        )]
        log_format: LogFormat,
        #[command(flatten)]
        settings: Box<RawConfig>,
    },
    /// Run a SQL query against a running server.
    Sql {
        query: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Run a label-matcher query: '{service_name="api"} |= "error"'.
    Query {
        query: String,
        /// Start of the range (RFC 3339 or Unix time); default one hour ago.
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Compact small chunks and apply retention now, showing progress.
    Compact {
        /// Also compact hours that have not ended yet.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show every span and log line of a trace.
    Trace {
        trace_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fill a running server with telemetry from a simulated shop: logs, traces,
    /// metrics with exemplars and CPU profiles, all of one request correlated.
    Generate {
        /// How much time to fill, ending now (or after --start).
        #[arg(long, default_value = "5m")]
        duration: String,
        /// Requests per simulated second; each is about six spans and six lines.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// The same seed and start give the same telemetry; default: the start time.
        #[arg(long)]
        seed: Option<u64>,
        /// Where simulated time starts (RFC 3339 or Unix time); default: --duration ago.
        #[arg(long)]
        start: Option<String>,
        /// After filling, go on in real time until stopped.
        #[arg(long)]
        follow: bool,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Write the requests and flat Parquet tables of the logs and spans to this
        /// directory instead of sending them.
        #[arg(long, conflicts_with_all = ["follow", "replay"])]
        out: Option<PathBuf>,
        /// Send the requests written to this directory by --out, as fast as the
        /// server takes them.
        #[arg(long, conflicts_with_all = ["follow", "duration", "rate", "seed", "start"])]
        replay: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Ingest allocates many short-lived buffers; mimalloc handles that pattern far better
/// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            settings,
            log_format,
        } => serve(config, *settings, log_format).await,
        Command::Sql { query, client } => print(
            Client::new(&client.url, client.credentials())
                .sql(&query)
                .await,
        ),
        Command::Query {
            query,
            since,
            limit,
            client,
        } => print(
            Client::new(&client.url, client.credentials())
                .query(&query, since, limit)
                .await,
        ),
        Command::Compact { all, client } => print(
            Client::new(&client.url, client.credentials())
                .compact(all)
                .await,
        ),
        Command::Trace { trace_id, client } => print(
            Client::new(&client.url, client.credentials())
                .trace(&trace_id)
                .await,
        ),
        Command::Generate {
            duration,
            rate,
            seed,
            start,
            follow,
            concurrency,
            out,
            replay,
            client,
        } => {
            if let Some(dir) = replay {
                let pusher =
                    generate::push::Pusher::new(&client.url, client.credentials(), concurrency);
                let summary = generate::files::replay(&dir, pusher).await?;
                println!("{}", summary.report());
                return Ok(());
            }
            let duration = parse_duration(&duration).map_err(anyhow::Error::msg)?;
            anyhow::ensure!(duration > 0, "--duration must be positive");
            anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be positive");
            let start_ns = match start {
                Some(text) => parse_time(&text).map_err(anyhow::Error::msg)?,
                None => now_ns() - duration,
            };
            let until_ns = start_ns
                .checked_add(duration)
                .context("--start plus --duration is past the year 2262")?;
            let seed = seed.unwrap_or(start_ns as u64 / 1_000_000_000);
            println!("seed {seed}, start {start_ns}");
            let run = Run {
                config: generate::Config {
                    seed,
                    start_ns,
                    traces_per_second: rate,
                    ..Default::default()
                },
                until_ns,
                follow,
                concurrency,
            };
            let summary = match out {
                Some(dir) => generate::files::record(&run, &dir)?,
                None => generate::push::run(run, &client.url, client.credentials()).await?,
            };
            println!("{}", summary.report());
            Ok(())
        }
    }
}

fn print(result: threadline::cli::Result<String>) -> anyhow::Result<()> {
    println!("{}", result?);
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

async fn serve(
    config: Option<PathBuf>,
    settings: RawConfig,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    let logs = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_env("THREADLINE_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    );
    match log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let raw = match &config {
        Some(path) => RawConfig::from_file(path)?.merge(settings),
        None => settings,
    };
    let config = Config::from_raw(raw)?;
    let server = Server::start(config)
        .await
        .context("cannot start threadline")?;
    let stop = server.stop_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    server.wait().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
