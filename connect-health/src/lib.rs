//! The standard gRPC health service, `grpc.health.v1.Health`, for servers built on
//! connect-tower.
//!
//! # Contract
//!
//! [`HealthService`] answers the health checking protocol (grpc/grpc
//! `doc/health-checking.md`) over Connect, gRPC and gRPC-Web, from the statuses a
//! [`HealthReporter`] holds:
//!
//! - **Check** answers the service's current status. A service the reporter does not know
//!   fails with `not_found`; the empty name is the server as a whole (`SERVING` from the
//!   start). While the server drains (graceful shutdown started) every known service is
//!   reported `NOT_SERVING`.
//! - **Watch** sends the current status at once (`SERVICE_UNKNOWN` for an unknown service,
//!   which is a message, not an error: the stream stays open), then a message each time the
//!   status changes (changes in quick succession may be coalesced into the latest; a status
//!   is never sent twice in a row). When the server starts draining, the stream sends a last
//!   `NOT_SERVING` (unless that was the last status sent) and ends with `OK`, so a client
//!   reconnects elsewhere instead of holding the draining server open.
//! - **List** answers every known service and its status; more than [`MAX_LIST_SERVICES`]
//!   fail with `resource_exhausted`.
//!
//! The service needs no async runtime: watches wait on std wakers, and the reporter's lock is
//! never held across an `await`. [`FILE_DESCRIPTOR_SET`] describes `grpc.health.v1` for server
//! reflection (e.g. `connect-reflection`).
//!
//! ```
//! use connect_tower::server::{ConnectService, Routes};
//!
//! let (health, health_server) = connect_health::server();
//! // Report the services the server offers as they become ready:
//! health.set_serving("acme.v1.Greeter");
//! let routes = Routes::new().service(health_server); // next to the server's own services
//! let service = ConnectService::new(routes);
//! // … serve `service`; later, e.g. when a dependency fails:
//! health.set_not_serving("acme.v1.Greeter");
//! # let _ = service;
//! ```
//!
//! The generated client, [`health::HealthClient`], calls any server's health service.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod reporter;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use connect_tower::server::ResponseSender;
use connect_tower::{Code, Request, Response, Status};

pub use reporter::HealthReporter;

/// Everything generated from `proto/grpc/health/v1/health.proto`.
#[allow(missing_docs, reason = "buffa's package modules carry no docs")]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_include.rs"));
}

/// The `grpc.health.v1` package: messages and the `health` service module (server, client,
/// method constants).
pub use proto::grpc::health::v1;
/// The `grpc.health.v1.Health` service: [`health::Health`] (the handler trait),
/// [`health::HealthServer`], [`health::HealthClient`] and the method constants.
pub use proto::grpc::health::v1::health;
/// Whether a service can take calls, as the protocol reports it.
pub use proto::grpc::health::v1::health_check_response::ServingStatus;

use v1::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};

/// The serialized `google.protobuf.FileDescriptorSet` of `grpc/health/v1/health.proto`, for
/// server reflection (written by `connect_codegen::Builder::file_descriptor_set_path`).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/health.binpb"));

/// The most services `List` answers; more fail with `resource_exhausted` (the protocol's
/// limit).
pub const MAX_LIST_SERVICES: usize = 100;

/// A reporter and the generated server answering from it: the usual way to start.
pub fn server() -> (HealthReporter, health::HealthServer<HealthService>) {
    let reporter = HealthReporter::new();
    let server = HealthService::new(reporter.clone()).into_server();
    (reporter, server)
}

/// The `grpc.health.v1.Health` handlers, answering from a [`HealthReporter`]. Serve it
/// with [`into_server`](Self::into_server) (or [`health::HealthServer::new`]).
#[derive(Clone, Debug)]
pub struct HealthService {
    reporter: HealthReporter,
}

impl HealthService {
    /// Handlers answering from `reporter`.
    pub fn new(reporter: HealthReporter) -> Self {
        HealthService { reporter }
    }

    /// The generated server for these handlers, to serve alone or add to a
    /// `connect_tower::server::Routes`.
    pub fn into_server(self) -> health::HealthServer<HealthService> {
        health::HealthServer::new(self)
    }

    /// The reporter the handlers answer from.
    pub fn reporter(&self) -> &HealthReporter {
        &self.reporter
    }
}

impl health::Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.message().service;
        match self.reporter.status(service) {
            None => Err(Status::new(
                Code::NotFound,
                format!("unknown service {service:?}"),
            )),
            Some(_) if request.context().shutdown().is_draining() => {
                Ok(Response::new(response(ServingStatus::NOT_SERVING)))
            }
            Some(status) => Ok(Response::new(response(status))),
        }
    }

    async fn list(
        &self,
        request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self.reporter.statuses();
        if statuses.len() > MAX_LIST_SERVICES {
            return Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "{} services, more than the {MAX_LIST_SERVICES} List answers",
                    statuses.len()
                ),
            ));
        }
        let draining = request.context().shutdown().is_draining();
        let statuses = statuses
            .into_iter()
            .map(|(name, status)| {
                let status = if draining {
                    ServingStatus::NOT_SERVING
                } else {
                    status
                };
                (name, response(status))
            })
            .collect();
        Ok(Response::new(HealthListResponse {
            statuses,
            ..Default::default()
        }))
    }

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
        mut responses: ResponseSender<HealthCheckResponse>,
    ) -> Result<(), Status> {
        let (context, message) = request.into_parts();
        let mut watch = self.reporter.watch(message.service);
        let mut draining = pin!(context.shutdown().draining());
        let mut last_sent = None;
        loop {
            // Nothing is locked across this wait: the watch takes the reporter's lock only
            // inside one poll.
            let next = poll_fn(|cx| {
                if draining.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                watch.poll_status(cx).map(Some)
            })
            .await;
            let status = next.unwrap_or(ServingStatus::NOT_SERVING);
            if last_sent != Some(status) {
                responses.send(response(status)).await?;
                last_sent = Some(status);
            }
            if next.is_none() {
                // The server is draining: end cleanly so the client goes elsewhere.
                return Ok(());
            }
        }
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.into(),
        ..Default::default()
    }
}
