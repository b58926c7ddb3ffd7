//! The admin endpoints: `GET /admin/scheduler/jobs`, `GET /admin/scheduler/jobs/{name}` and
//! `POST /admin/scheduler/jobs/{name}/run|pause|resume`, served by the router behind its admin
//! guard (the admin token, or a role the auth module grants).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use modular_core::ServiceRegistry;
use modular_core::http::RouteRegistry;
use serde::Serialize;

use crate::error::SchedulerError;
use crate::module::NAME;
use crate::scheduler::{JobStatus, Scheduler};

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
    let state = || scheduler.clone();
    routes.admin_route(NAME, ADMIN_PATHS[0], get(list).with_state(state()));
    routes.admin_route(NAME, ADMIN_PATHS[1], get(job).with_state(state()));
    routes.admin_route(NAME, ADMIN_PATHS[2], post(run).with_state(state()));
    routes.admin_route(NAME, ADMIN_PATHS[3], post(pause).with_state(state()));
    routes.admin_route(NAME, ADMIN_PATHS[4], post(resume).with_state(state()));
    routes.document(NAME, <SchedulerApi as utoipa::OpenApi>::openapi());
}

/// The admin endpoints' OpenAPI description, merged into `GET /admin/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, job, run, pause, resume),
    components(schemas(JobStatus, JobList, ActionAnswer, JobErrorBody))
)]
struct SchedulerApi;

/// `GET /admin/scheduler/jobs`.
#[derive(Serialize, utoipa::ToSchema)]
struct JobList {
    /// Every job, by name.
    jobs: Vec<JobStatus>,
}

/// The answer of `run`, `pause` and `resume`.
#[derive(Serialize, utoipa::ToSchema)]
struct ActionAnswer {
    /// The job.
    job: String,
    /// `triggered`, `paused` or `resumed`.
    status: &'static str,
    /// Its state after the action.
    state: Option<JobStatus>,
}

/// An error answer; `job` names the job when the action was refused.
#[derive(Serialize, utoipa::ToSchema)]
struct JobErrorBody {
    /// The job, when an action on it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<String>,
    /// What went wrong.
    error: String,
}

#[utoipa::path(
    get,
    path = "/admin/scheduler/jobs",
    tag = "scheduler",
    summary = "Every job",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "every job's state", body = JobList),
    ),
)]
async fn list(State(scheduler): State<Scheduler>) -> Response {
    Json(JobList {
        jobs: scheduler.statuses(),
    })
    .into_response()
}

#[utoipa::path(
    get,
    path = "/admin/scheduler/jobs/{name}",
    tag = "scheduler",
    summary = "One job",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "the job's name")),
    responses(
        (status = 200, description = "the job's state", body = JobStatus),
        (status = 404, description = "no such job", body = JobErrorBody),
    ),
)]
async fn job(State(scheduler): State<Scheduler>, Path(name): Path<String>) -> Response {
    match scheduler.status(&name) {
        Some(status) => Json(status).into_response(),
        None => unknown(&name),
    }
}

#[utoipa::path(
    post,
    path = "/admin/scheduler/jobs/{name}/run",
    tag = "scheduler",
    summary = "Run a job now",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "the job's name")),
    responses(
        (status = 202, description = "triggered", body = ActionAnswer),
        (status = 404, description = "no such job", body = JobErrorBody),
        (status = 409, description = "the job cannot run now", body = JobErrorBody),
    ),
)]
async fn run(State(scheduler): State<Scheduler>, Path(name): Path<String>) -> Response {
    act(&scheduler, &name, Action::Run)
}

#[utoipa::path(
    post,
    path = "/admin/scheduler/jobs/{name}/pause",
    tag = "scheduler",
    summary = "Pause a job",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "the job's name")),
    responses(
        (status = 202, description = "paused", body = ActionAnswer),
        (status = 404, description = "no such job", body = JobErrorBody),
        (status = 409, description = "the job cannot be paused", body = JobErrorBody),
    ),
)]
async fn pause(State(scheduler): State<Scheduler>, Path(name): Path<String>) -> Response {
    act(&scheduler, &name, Action::Pause)
}

#[utoipa::path(
    post,
    path = "/admin/scheduler/jobs/{name}/resume",
    tag = "scheduler",
    summary = "Resume a job",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "the job's name")),
    responses(
        (status = 202, description = "resumed", body = ActionAnswer),
        (status = 404, description = "no such job", body = JobErrorBody),
        (status = 409, description = "the job cannot be resumed", body = JobErrorBody),
    ),
)]
async fn resume(State(scheduler): State<Scheduler>, Path(name): Path<String>) -> Response {
    act(&scheduler, &name, Action::Resume)
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
            Json(ActionAnswer {
                job: name.to_owned(),
                status: done,
                state: scheduler.status(name),
            }),
        )
            .into_response(),
        Err(SchedulerError::UnknownJob { .. }) => unknown(name),
        Err(error) => (
            StatusCode::CONFLICT,
            Json(JobErrorBody {
                job: Some(name.to_owned()),
                error: error.to_string(),
            }),
        )
            .into_response(),
    }
}

fn unknown(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(JobErrorBody {
            job: None,
            error: format!("no job named \"{name}\""),
        }),
    )
        .into_response()
}
