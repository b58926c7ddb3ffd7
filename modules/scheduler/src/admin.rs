//! The admin endpoints: `GET /admin/scheduler/jobs`, `GET /admin/scheduler/jobs/{name}` and
//! `POST /admin/scheduler/jobs/{name}/run|pause|resume`, served by the router behind its admin
//! guard (the admin token, or a role the auth module grants).

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use modular_core::ServiceRegistry;
use modular_core::http::RouteRegistry;
use serde_json::json;

use crate::error::SchedulerError;
use crate::module::NAME;
use crate::scheduler::Scheduler;

/// The paths, as registered.
pub const ADMIN_PATHS: [&str; 5] = [
    "/admin/scheduler/jobs",
    "/admin/scheduler/jobs/{name}",
    "/admin/scheduler/jobs/{name}/run",
    "/admin/scheduler/jobs/{name}/pause",
    "/admin/scheduler/jobs/{name}/resume",
];

pub(crate) fn register(services: &ServiceRegistry, scheduler: &Scheduler) {
    let routes = RouteRegistry::shared(services);
    let s = scheduler.clone();
    routes.admin_route(
        NAME,
        ADMIN_PATHS[0],
        get(move || {
            let s = s.clone();
            async move { Json(json!({ "jobs": s.statuses() })).into_response() }
        }),
    );
    let s = scheduler.clone();
    routes.admin_route(
        NAME,
        ADMIN_PATHS[1],
        get(move |Path(name): Path<String>| {
            let s = s.clone();
            async move {
                match s.status(&name) {
                    Some(status) => Json(status).into_response(),
                    None => unknown(&name),
                }
            }
        }),
    );
    for (path, action) in [
        (ADMIN_PATHS[2], Action::Run),
        (ADMIN_PATHS[3], Action::Pause),
        (ADMIN_PATHS[4], Action::Resume),
    ] {
        let s = scheduler.clone();
        routes.admin_route(
            NAME,
            path,
            post(move |Path(name): Path<String>| {
                let s = s.clone();
                async move { act(&s, &name, action) }
            }),
        );
    }
}

#[derive(Clone, Copy)]
enum Action {
    Run,
    Pause,
    Resume,
}

fn act(scheduler: &Scheduler, name: &str, action: Action) -> Response {
    let (result, done) = match action {
        Action::Run => (scheduler.trigger(name), "triggered"),
        Action::Pause => (scheduler.pause(name), "paused"),
        Action::Resume => (scheduler.resume(name), "resumed"),
    };
    match result {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "job": name, "status": done, "state": scheduler.status(name) })),
        )
            .into_response(),
        Err(SchedulerError::UnknownJob { .. }) => unknown(name),
        Err(error) => (
            StatusCode::CONFLICT,
            Json(json!({ "job": name, "error": error.to_string() })),
        )
            .into_response(),
    }
}

fn unknown(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no job named \"{name}\"") })),
    )
        .into_response()
}
