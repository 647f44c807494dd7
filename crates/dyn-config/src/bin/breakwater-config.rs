//! `breakwater-config`: read and change dynamic settings in the DynamoDB table.
//!
//! Works against any endpoint (`--endpoint-url`, e.g. a local DynamoDB or moto) and against
//! AWS with the standard credentials chain. Writes are conditional on the version read (or
//! `--expect-version`), so two operators never overwrite each other silently; each write
//! records who, when and the previous value, and goes into the key's history.
//!
//! Results go to stdout; a closed stdout (`| head`) ends the command quietly with status 0.
//! Errors go to stderr as one line (as `{"error": "...", "kind": "..."}` with `--output
//! json`; the SDK's whole account of a DynamoDB error only with `--verbose`), with a status
//! per kind: 3 invalid (refused before writing), 4 conflict, 5 not found, 6 unreachable (no
//! answer from DynamoDB), 7 DynamoDB answered with an error, 1 anything else.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::process::ExitCode;

use breakwater_dyn_config::Scope;
use breakwater_dyn_config::admin::{Admin, HistoryEntry, WriteError};
use breakwater_dyn_config::table::Row;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "breakwater-config",
    version,
    about = "Read and change Breakwater dynamic settings in DynamoDB"
)]
struct Cli {
    /// The settings table (its history is `<table>-history`).
    #[arg(
        long,
        env = "BREAKWATER_CONFIG_TABLE",
        default_value = "breakwater-config"
    )]
    table: String,
    /// A DynamoDB endpoint other than AWS's (local DynamoDB, moto, ...).
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    endpoint_url: Option<String>,
    /// The AWS region (else from the standard chain: AWS_REGION, profile, ...).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// Longest a DynamoDB call may take, retries included, in seconds (connecting: 3 s).
    #[arg(long, env = "BREAKWATER_CONFIG_TIMEOUT_SECS", default_value_t = 20)]
    timeout_secs: u64,
    /// On errors, also print the SDK's whole account of them.
    #[arg(long, global = true)]
    verbose: bool,
    /// Output for people or as JSON.
    #[arg(long, env = "BREAKWATER_CONFIG_OUTPUT", value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args, Clone, Default)]
struct ScopeArgs {
    /// Only for this environment.
    #[arg(long, env = "BREAKWATER_CONFIG_ENVIRONMENT")]
    environment: Option<String>,
    /// Only for this region.
    #[arg(long = "scope-region", env = "BREAKWATER_CONFIG_SCOPE_REGION")]
    region: Option<String>,
    /// Only for this zone.
    #[arg(long, env = "BREAKWATER_CONFIG_ZONE")]
    zone: Option<String>,
    /// Only for this application.
    #[arg(long, env = "BREAKWATER_CONFIG_APP")]
    app: Option<String>,
    /// Only for this instance.
    #[arg(long, env = "BREAKWATER_CONFIG_INSTANCE")]
    instance: Option<String>,
}

impl ScopeArgs {
    fn scope(&self) -> Scope {
        Scope {
            environment: self.environment.clone(),
            region: self.region.clone(),
            zone: self.zone.clone(),
            app: self.app.clone(),
            instance: self.instance.clone(),
        }
    }
}

#[derive(Args)]
struct WriteArgs {
    /// Write only if the row is at this version (default: the version read just before).
    #[arg(long)]
    expect_version: Option<u64>,
    /// Who is writing (default: $USER).
    #[arg(long, env = "USER", default_value = "unknown")]
    who: String,
    /// Write a key under `hystrix.command.` that names no known setting (refused by
    /// default as a likely typo).
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create the settings table and its history table.
    Init {
        /// Turn DynamoDB Streams on for the settings table.
        #[arg(long)]
        streams: bool,
    },
    /// Show one key.
    Get {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Show the row an instance of the given scope uses for a key (the most specific match).
    Resolve {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// List every key (optionally those starting with a prefix).
    List {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Set a key (refused when the value fails the key's validation).
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Delete a key (its history stays).
    Delete {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show a key's writes.
    History {
        key: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
    /// Write again the value a key had at a version.
    Rollback {
        key: String,
        /// The version whose value to restore.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
}

fn row_json(row: &Row) -> serde_json::Value {
    json!({
        "key": row.key,
        "scope": row.scope.id(),
        "value": row.value,
        "version": row.version,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at,
        "previous_value": row.previous_value,
    })
}

fn row_text(row: &Row) -> String {
    format!(
        "{} [{}] = {}  (version {}, by {} at {}; was {})",
        row.key,
        row.scope.id(),
        row.value.as_deref().unwrap_or("<deleted>"),
        row.version,
        row.updated_by.as_deref().unwrap_or("?"),
        row.updated_at.as_deref().unwrap_or("?"),
        row.previous_value.as_deref().unwrap_or("<none>"),
    )
}

fn history_json(e: &HistoryEntry) -> serde_json::Value {
    json!({
        "version": e.version,
        "value": e.value,
        "previous_value": e.previous_value,
        "updated_by": e.updated_by,
        "updated_at": e.updated_at,
    })
}

async fn client(cli: &Cli) -> aws_sdk_dynamodb::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &cli.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(url) = &cli.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // An endpoint that accepts a connection and never answers must not hang the CLI.
    let total = std::time::Duration::from_secs(cli.timeout_secs.max(1));
    loader = loader.timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(3).min(total))
            .operation_attempt_timeout(total / 2)
            .operation_timeout(total)
            .build(),
    );
    aws_sdk_dynamodb::Client::new(&loader.load().await)
}

/// Why a command failed.
struct Failure {
    /// `invalid`, `conflict`, `not-found`, `unreachable`, `dynamodb` or `error`.
    kind: &'static str,
    /// One line a person can act on.
    message: String,
    /// The SDK's account, for `--verbose`.
    detail: String,
}

impl Failure {
    fn not_found(message: String) -> Self {
        Failure {
            kind: "not-found",
            message,
            detail: String::new(),
        }
    }

    fn exit_code(&self) -> u8 {
        match self.kind {
            "invalid" => 3,
            "conflict" => 4,
            "not-found" => 5,
            "unreachable" => 6,
            "dynamodb" => 7,
            _ => 1,
        }
    }
}

/// Runs the command; returns what to print on stdout.
async fn run(cli: &Cli) -> Result<String, Failure> {
    let admin = Admin::new(client(cli).await, &cli.table);
    let json = matches!(cli.output, Output::Json);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let show_row = |out: &mut String, row: &Row| {
        if json {
            let _ = writeln!(out, "{}", row_json(row));
        } else {
            let _ = writeln!(out, "{}", row_text(row));
        }
    };
    let err = |e: WriteError| {
        let mut message = e.to_string();
        if matches!(e.kind(), "unreachable" | "dynamodb") {
            let endpoint = cli.endpoint_url.as_deref().unwrap_or("AWS's endpoint");
            message.push_str(&format!(" (table {}, {endpoint})", cli.table));
        }
        Failure {
            kind: e.kind(),
            message,
            detail: e.detail().to_owned(),
        }
    };
    match &cli.command {
        Command::Init { streams } => {
            let tables = admin
                .create_tables_reporting(*streams, |line| eprintln!("{line}"))
                .await
                .map_err(err)?;
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    json!({"created": tables.created, "existing": tables.existing})
                );
            } else {
                for table in &tables.created {
                    let _ = writeln!(out, "created {table}");
                }
                for table in &tables.existing {
                    let _ = writeln!(out, "{table} exists already (left as it is)");
                }
            }
        }
        Command::Get { key, scope } => match admin.get(key, &scope.scope()).await.map_err(err)? {
            Some(row) if row.value.is_some() => show_row(&mut out, &row),
            _ => {
                return Err(Failure::not_found(format!(
                    "`{key}` ({}) is not set",
                    scope.scope().id()
                )));
            }
        },
        Command::Resolve { key, scope } => {
            match admin.resolve(key, &scope.scope()).await.map_err(err)? {
                Some(row) => show_row(&mut out, &row),
                None => {
                    return Err(Failure::not_found(format!(
                        "no row of `{key}` applies to {}: its other layers or default do",
                        scope.scope().id()
                    )));
                }
            }
        }
        Command::List { prefix } => {
            let rows: Vec<Row> = admin
                .list()
                .await
                .map_err(err)?
                .into_iter()
                .filter(|r| r.key.starts_with(prefix.as_str()))
                .collect();
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::Value::from(rows.iter().map(row_json).collect::<Vec<_>>())
                );
            } else {
                for row in &rows {
                    show_row(&mut out, row);
                }
            }
        }
        Command::Set {
            key,
            value,
            scope,
            write,
        } => {
            let row = admin
                .clone()
                .force(write.force)
                .write(
                    key,
                    &scope.scope(),
                    Some(value),
                    &write.who,
                    write.expect_version,
                )
                .await
                .map_err(err)?;
            show_row(&mut out, &row);
        }
        Command::Delete { key, scope, write } => {
            let row = admin
                .write(key, &scope.scope(), None, &write.who, write.expect_version)
                .await
                .map_err(err)?;
            show_row(&mut out, &row);
        }
        Command::History { key, scope } => {
            let entries = admin.history(key, &scope.scope()).await.map_err(err)?;
            if json {
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::Value::from(entries.iter().map(history_json).collect::<Vec<_>>())
                );
            } else {
                for e in &entries {
                    let _ = writeln!(
                        out,
                        "v{}  {}  by {} at {}  (was {})",
                        e.version,
                        e.value.as_deref().unwrap_or("<deleted>"),
                        e.updated_by,
                        e.updated_at,
                        e.previous_value.as_deref().unwrap_or("<none>")
                    );
                }
            }
        }
        Command::Rollback {
            key,
            to,
            scope,
            write,
        } => {
            let row = admin
                .rollback(key, &scope.scope(), *to, &write.who, write.expect_version)
                .await
                .map_err(err)?;
            show_row(&mut out, &row);
        }
    }
    Ok(out)
}

/// Writes `text` to stdout (locked) and flushes it.
fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Reports an error on stderr (ignoring a closed stderr: there is nowhere else to say it).
fn report(output: Output, verbose: bool, failure: &Failure) {
    let mut stderr = io::stderr().lock();
    let detail = (verbose && !failure.detail.is_empty()).then_some(failure.detail.as_str());
    let _ = match output {
        Output::Json => {
            let mut error = json!({ "error": failure.message, "kind": failure.kind });
            if let Some(detail) = detail {
                error["detail"] = detail.into();
            }
            writeln!(stderr, "{error}")
        }
        Output::Text => match detail {
            Some(detail) => writeln!(stderr, "breakwater-config: {}\n{detail}", failure.message),
            None => writeln!(stderr, "breakwater-config: {}", failure.message),
        },
    };
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(&cli).await.and_then(|text| match print(&text) {
        Ok(()) => Ok(()),
        // The reader went away (`| head`): it has what it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure {
            kind: "error",
            message: format!("cannot write the output: {e}"),
            detail: String::new(),
        }),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            report(cli.output, cli.verbose, &failure);
            ExitCode::from(failure.exit_code())
        }
    }
}
