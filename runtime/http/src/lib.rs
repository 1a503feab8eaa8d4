//! spikard's HTTP core, free of any language binding.
//!
//! A binding describes routes ([`RouteSpec`]: method, path, parameters, body
//! schema) and implements [`Handler`]; the core serves them: hyper parses, the
//! [`router`] matches, [`params`] and [`body`] extract and coerce, [`validation`]
//! checks JSON Schemas before the handler is called, and [`problem`] turns every
//! failure into an RFC 9457 response.

pub mod access_log;
pub mod activity;
pub mod app;
pub mod body;
mod conformance;
pub mod connections;
pub mod delivery;
pub mod document;
pub mod formats;
pub mod framing;
pub mod handler;
pub mod metrics;
pub mod notice;
pub mod params;
pub mod path;
pub mod peers;
pub mod problem;
pub mod refusal;
pub mod remote;
pub mod router;
pub mod server;
pub mod stages;
pub mod stats;
pub mod stats_file;
mod timing;
pub mod validation;
pub mod watchdog;

pub use access_log::{AccessLog, AccessRecord};
pub use app::{App, AppConfig, Exchange};
pub use body::{BodySpec, Parsed};
pub use document::{Document, Node as DocumentNode, View as DocumentView};
pub use handler::{
    json_response, Answer, Fallback, Handler, HandlerError, HandlerFuture, HandlerResult,
    InvalidRequest, RequestData, ResponseBody, StreamSlot,
};
pub use notice::Notice;
pub use params::{ParamSource, ParamSpec, Scalar};
pub use peers::Peers;
pub use problem::{FieldError, LocSegment, Problem};
pub use remote::{ClientAddr, ProxyTrust, Remote, Scheme};
pub use router::{RouteSpec, Router, RouterBuilder};
pub use server::{serve, Listener, ServeReport, ServerConfig, Warn};
pub use stages::{HandlerLaps, Stage, StageTimes};
pub use stats::StageStats;
