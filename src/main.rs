//! The `viewkeeper` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::postgres::PgPoolOptions;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;
use viewkeeper::config::{AdminArgs, CheckArgs, Config, ConfigArgs, DirArgs};
use viewkeeper::retire::{self, RetireOptions};
use viewkeeper::service::{self, ServiceError};
use viewkeeper::sink::search::PageRequest;
use viewkeeper::source::connection::PgEndpoint;
use viewkeeper::{commands, workload};

/// mimalloc, not glibc's malloc: the engine allocates and frees millions of
/// small values per batch (decoded rows, keys, documents), and glibc spent
/// more than 40% of the engine's time in malloc and free (consolidating
/// fastbins, unlinking chunks); mimalloc doubled the engine's rate at a
/// million items, at no more memory (bench/README.md, eighth round).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "viewkeeper",
    version,
    about = "Keeps Redis caches, search indexes and SQL aggregate tables in sync with PostgreSQL through its change log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: snapshot, then stream changes into the views.
    Run(ConfigArgs),
    /// Validate view files; with a database URL, also their tables and columns.
    Check(CheckArgs),
    /// Print the changes to the views' tables as JSON lines (for debugging).
    Tail(ConfigArgs),
    /// Query a search view's index; prints the hits as JSON.
    Search {
        /// The search view
        view: String,
        /// A query in Tantivy's syntax (see the README)
        query: String,
        /// Hits to return
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Best hits to skip before them (the next page)
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Order by fast fields instead of the score: FIELD, FIELD:asc or FIELD:desc, up to
        /// three separated by commas (stars:desc,name)
        #[arg(long)]
        sort: Option<String>,
        /// Count the matches' values of fast fields: FIELD[,FIELD…], a number's by
        /// FIELD:WIDTH, a date's by FIELD:year, FIELD:month or FIELD:day
        #[arg(long)]
        facets: Option<String>,
        /// Values listed per facet, the most frequent first [default: 10]
        #[arg(long)]
        facet_limit: Option<usize>,
        #[command(flatten)]
        dirs: DirArgs,
    },
    /// Print the running service's status (views, lag, outboxes, slot) as JSON.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Rebuild one view of the running service (from its state store, or from
    /// PostgreSQL with --from-source), and wait until it is done.
    Rebuild {
        /// The view to rebuild
        view: String,
        /// Re-snapshot the tables from PostgreSQL (a new slot and snapshot;
        /// streaming pauses meanwhile) instead of recomputing from the state store
        #[arg(long)]
        from_source: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make the running service read its view files again (as SIGHUP does):
    /// changed views are rebuilt, new ones built, removed ones stopped.
    Reload {
        /// Then wait until every added or changed view reads `live` (its
        /// target shows the new definition); exit with 1 if one fails
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds, exiting with 1
        #[arg(long, requires = "wait")]
        timeout: Option<u64>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete what a removed view left behind (Redis keys, index, table)
    /// and forget it; refused while the view's file is loaded.
    Drop {
        /// The removed view
        view: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List one view's dead letters (roots whose output could not be made:
    /// LSN, table, key, reason); with --retry, retry them first.
    DeadLetters {
        /// The view
        view: String,
        /// Refresh every dead-lettered root now (after fixing the data or the
        /// limits); those that succeed leave the list
        #[arg(long)]
        retry: bool,
        /// Dead letters to list
        #[arg(long, default_value_t = 100)]
        limit: usize,
        // The admin token is needed for --retry.
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Retire a stopped instance for good: drop its replication slot (which
    /// holds WAL on the primary until dropped) and publication, and remove
    /// its data directory. Without --yes, only says what it would do.
    Retire {
        /// Do it (without: print what would be done, and exit with 1)
        #[arg(long)]
        yes: bool,
        /// Also delete the views' Redis keys and aggregate tables
        #[arg(long)]
        drop_targets: bool,
        /// Leave the publication (another consumer reads it)
        #[arg(long)]
        keep_publication: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Create and load the example shop, and/or run random transactions on it.
    Workload(WorkloadArgs),
}

#[derive(clap::Args)]
struct WorkloadArgs {
    /// PostgreSQL URL
    #[arg(long, env = "VIEWKEEPER_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Drop and create the shop tables and load this many orders first
    #[arg(long)]
    setup_orders: Option<u64>,
    /// Number of random transactions to run
    #[arg(long, default_value_t = 1000)]
    transactions: u64,
    /// Transactions per second (default: as fast as possible)
    #[arg(long)]
    rate: Option<f64>,
    /// Random seed
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    viewkeeper::allocator::configure();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(args) => {
            let config = Config::resolve(&args)?;
            init_logging(&config.log);
            tracing::info!(?config, "configuration");
            let (stop, shutdown) = watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            });
            report(service::run(config, shutdown).await)
        }
        Command::Check(args) => {
            let settings = args.resolve()?;
            let database = settings
                .database_url
                .as_deref()
                .map(|url| commands::CheckedDatabase {
                    url,
                    aggregates_url: settings.aggregates_url.as_deref(),
                    publication: &settings.publication,
                });
            let views = &settings.views;
            let offline_only = database.is_none();
            match commands::check(views, database).await {
                Ok(checked) => {
                    for note in &checked.notes {
                        print_answer(format_args!("note: {note}"))?;
                    }
                    if offline_only {
                        print_answer(format_args!(
                            "note: no database URL (--database-url, VIEWKEEPER_DATABASE_URL or \
                             the config file's database_url): tables, columns and types were \
                             not checked"
                        ))?;
                    }
                    let count = checked.views;
                    let against = if offline_only {
                        ""
                    } else {
                        ", against the database's tables, columns and types"
                    };
                    print_answer(format_args!(
                        "{count} view(s) OK in {}{against}",
                        views.display()
                    ))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(ServiceError::Views(errors)) => {
                    eprintln!("{errors}");
                    eprintln!("{} error(s) in {}", errors.0.len(), views.display());
                    Ok(ExitCode::FAILURE)
                }
                Err(error) => report(Err(error)),
            }
        }
        Command::Tail(args) => {
            let config = Config::resolve(&args)?;
            init_logging(&format!("warn,viewkeeper={}", config.log));
            report(commands::tail(&config, &mut std::io::stdout().lock()).await)
        }
        Command::Search {
            view,
            query,
            limit,
            offset,
            sort,
            facets,
            facet_limit,
            dirs,
        } => {
            let (views, data_dir) = dirs.resolve()?;
            let page = PageRequest::parse(
                offset,
                limit,
                sort.as_deref(),
                facets.as_deref(),
                facet_limit,
            );
            let answer = page
                .map_err(commands::SearchCommandError::from)
                .and_then(|page| commands::search(&views, &data_dir, &view, &query, &page));
            match answer {
                Ok(hits) => {
                    print_answer(serde_json::to_string_pretty(&hits)?)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Status { admin } => {
            let admin = admin.resolve()?;
            print_outcome(tokio::task::spawn_blocking(move || commands::status(&admin.addr)).await?)
        }
        Command::Rebuild {
            view,
            from_source,
            admin,
        } => {
            let admin = admin.resolve()?;
            let Some(token) = admin.token else {
                return Ok(no_admin_token());
            };
            let rebuilt = tokio::task::spawn_blocking(move || {
                commands::rebuild(
                    &admin.addr,
                    &token,
                    &view,
                    from_source,
                    &mut std::io::stderr(),
                )
            })
            .await?;
            match rebuilt {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Reload {
            wait,
            timeout,
            admin,
        } => {
            let admin = admin.resolve()?;
            let Some(token) = admin.token else {
                return Ok(no_admin_token());
            };
            let addr = admin.addr.clone();
            let outcome =
                tokio::task::spawn_blocking(move || commands::reload(&addr, &token)).await?;
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            print_answer(&outcome)?;
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            let timeout = timeout.map(std::time::Duration::from_secs);
            let waited = tokio::task::spawn_blocking(move || {
                let mut progress = std::io::stderr();
                commands::wait_for_reloaded_views(&admin.addr, &outcome, timeout, &mut progress)
            })
            .await?;
            match waited {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Drop { view, admin } => {
            let admin = admin.resolve()?;
            match admin.token {
                Some(token) => print_outcome(
                    tokio::task::spawn_blocking(move || commands::drop(&admin.addr, &token, &view))
                        .await?,
                ),
                None => Ok(no_admin_token()),
            }
        }
        Command::Retire {
            yes,
            drop_targets,
            keep_publication,
            config,
        } => {
            let config = Config::resolve(&config)?;
            // Its report is what it did; the steps' own logs would interleave.
            init_logging("warn");
            let options = RetireOptions {
                drop_targets,
                keep_publication,
                confirmed: yes,
            };
            let retirement = match retire::retire(&config, options).await {
                Ok(retirement) => retirement,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            if !retirement.done {
                print_answer(format_args!(
                    "viewkeeper retire would (run it again with --yes to do it):"
                ))?;
            }
            for step in &retirement.steps {
                print_answer(format_args!("- {}", step.describe(retirement.done)))?;
            }
            Ok(if retirement.done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::DeadLetters {
            view,
            retry,
            limit,
            admin,
        } => {
            let admin = admin.resolve()?;
            if retry && admin.token.is_none() {
                return Ok(no_admin_token());
            }
            let token = admin.token.filter(|_| retry);
            print_outcome(
                tokio::task::spawn_blocking(move || {
                    commands::dead_letters(&admin.addr, &view, token.as_deref(), limit)
                })
                .await?,
            )
        }
        Command::Workload(args) => run_workload(args).await,
    }
}

/// Prints a service error the way an operator reads it (one error per line
/// for invalid views) and turns it into the exit code.
fn report(result: Result<(), ServiceError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A mutating admin call without a token: says where one comes from.
fn no_admin_token() -> ExitCode {
    eprintln!(
        "error: this call changes the running service and needs its admin token: give \
         --admin-token, set VIEWKEEPER_ADMIN_TOKEN, or name the service's config file (its \
         admin_token) with --config, or run where it is"
    );
    ExitCode::FAILURE
}

async fn run_workload(args: WorkloadArgs) -> anyhow::Result<ExitCode> {
    init_logging("warn");
    let endpoint = PgEndpoint::parse(&args.database_url)?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(endpoint.sql_options()?)
        .await
        .context("connecting to PostgreSQL")?;
    if let Some(orders) = args.setup_orders {
        workload::create_schema(&pool).await?;
        workload::load(&pool, &workload::Scale::from_orders(orders)).await?;
        print_answer(format_args!("shop created with {orders} orders"))?;
    }
    if args.transactions > 0 {
        let mut options = workload::WorkloadOptions::new(args.transactions, args.seed);
        options.rate = args.rate;
        let stats = workload::run(&pool, &options).await?;
        print_answer(format_args!(
            "{} transactions committed, {} failed, in {:.1}s",
            stats.committed,
            stats.failed,
            stats.elapsed.as_secs_f64()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(filter));
    // Colours only for a person at a terminal, not in a file or a journal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Prints a command's answer on stdout. A reader that stops reading (`|
/// head`) ends the output there: not an error of the command, and not the
/// panic `println!` gives on a closed pipe.
fn print_answer(answer: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{answer}") {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written,
    }
}

/// Prints what an admin command answered, or its error; the exit code says which.
fn print_outcome(outcome: Result<String, commands::StatusError>) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(text) => {
            print_answer(text)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
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
    let _ = ctrl_c.await;
}
