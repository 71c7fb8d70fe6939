//! viewkeeper keeps derived data in sync with a PostgreSQL database through its
//! change log.
//!
//! Map of the crate, in dataflow order:
//! - [`change`]: the change model (values, rows, batches, positions).
//! - [`source`]: PostgreSQL logical replication (pgoutput) and the initial snapshot.
//! - [`view`]: view definitions: parsing, validation, and the typed model.
//! - [`expr`]: the small SQL expression language of `where` and friends.
//! - [`plan`]: what each table feeds: stored columns, join indexes, affected views.
//! - [`state`]: the embedded state store (rows, join indexes, outputs, outboxes).
//! - [`engine`]: batch → affected roots → outputs → diffs → outboxes.
//! - [`aggregate`]: the running state of aggregate groups, exact under retraction.
//! - [`sink`]: drains outboxes into Redis, Tantivy indexes and SQL tables.
//! - [`admin`]: the admin HTTP API (health, status, metrics, search, rebuilds).
//! - [`rebuild`]: rebuilding one view on demand.
//! - [`config`], [`service`], [`commands`]: configuration, the running
//!   service, and the other command-line commands (`check`, `tail`).
//! - [`status`]: what `/status` and `/ready` report.
//! - [`telemetry`]: every metric name, and the Prometheus recorder.
//! - [`workload`]: the example shop's workload generator.

pub mod admin;
pub mod aggregate;
pub mod allocator;
pub mod change;
pub mod commands;
pub mod config;
pub mod drop_view;
pub mod engine;
pub mod expr;
pub mod plan;
pub mod rebuild;
pub mod reload;
pub mod retire;
pub mod service;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod view;
pub mod workload;
