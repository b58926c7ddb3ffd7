//! The page: one HTML shell, one stylesheet and one script, embedded with `include_str!`,
//! plus the one guarded JSON endpoint the script reads its settings from.
//!
//! The shell and its assets are the same bytes for every caller and carry no data, so they
//! are served without credentials (a browser that navigates to `/admin/ui` sends no
//! `Authorization` header): the script asks for a token with a login form, keeps it in
//! `sessionStorage` and sends it as `Authorization: Bearer` on every data call. Each data call
//! is an `/admin/*` endpoint behind the router's admin guard, or `/health`, which shows
//! messages only to an authorized caller. A session the auth module grants the admin role
//! through a cookie works without the form.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY};
use http::{HeaderValue, StatusCode};
use modular_core::config::ConfigHandle;
use modular_core::http::RouteRegistry;

use crate::config::ConsoleConfig;

/// The page.
pub const PAGE_PATH: &str = "/admin/ui";
/// The script.
pub const SCRIPT_PATH: &str = "/admin/ui/console.js";
/// The stylesheet.
pub const STYLE_PATH: &str = "/admin/ui/console.css";
/// The page's settings (behind the admin guard): `poll_interval_ms`, `page_size`.
pub const SETTINGS_PATH: &str = "/admin/ui/settings";

const HTML: &str = include_str!("../assets/console.html");
const SCRIPT: &str = include_str!("../assets/console.js");
const STYLE: &str = include_str!("../assets/console.css");

/// Same-origin scripts, styles and fetches only; no inline script, no framing, no form
/// posted anywhere (the login form is handled by the script).
const CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
);

/// Registers the page, its assets and its settings endpoint under `owner`, and their OpenAPI
/// description.
pub(crate) fn register(routes: &RouteRegistry, owner: &str, config: ConfigHandle<ConsoleConfig>) {
    // Reachable without the token (a browser opening the page has none to send), but mounted
    // with the admin API: while `admin.token` is unset they answer 404 like every `/admin/*`.
    routes.admin_public_route(owner, PAGE_PATH, get(page).with_state(config.clone()));
    routes.admin_public_route(owner, SCRIPT_PATH, get(script).with_state(config.clone()));
    routes.admin_public_route(owner, STYLE_PATH, get(style).with_state(config.clone()));
    routes.admin_route(
        owner,
        SETTINGS_PATH,
        get(settings).with_state(config.clone()),
    );
    routes.document(owner, <ConsoleApi as utoipa::OpenApi>::openapi());
}

/// The page's OpenAPI description, merged into `GET /admin/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(page, script, style, settings))]
struct ConsoleApi;

type Config = State<ConfigHandle<ConsoleConfig>>;

/// The page shell: public (it carries no data; its script asks for the token).
#[utoipa::path(
    get,
    path = "/admin/ui",
    tag = "console",
    summary = "The status page",
    responses(
        (status = 200, description = "the page", content_type = "text/html; charset=utf-8", body = String),
        (status = 404, description = "`console.enabled` is false"),
    ),
)]
async fn page(State(config): Config) -> Response {
    serve(&config, HTML, "text/html; charset=utf-8")
}

/// The page's script.
#[utoipa::path(
    get,
    path = "/admin/ui/console.js",
    tag = "console",
    summary = "The status page's script",
    responses(
        (status = 200, description = "the script", content_type = "text/javascript; charset=utf-8", body = String),
        (status = 404, description = "`console.enabled` is false"),
    ),
)]
async fn script(State(config): Config) -> Response {
    serve(&config, SCRIPT, "text/javascript; charset=utf-8")
}

/// The page's stylesheet.
#[utoipa::path(
    get,
    path = "/admin/ui/console.css",
    tag = "console",
    summary = "The status page's stylesheet",
    responses(
        (status = 200, description = "the stylesheet", content_type = "text/css; charset=utf-8", body = String),
        (status = 404, description = "`console.enabled` is false"),
    ),
)]
async fn style(State(config): Config) -> Response {
    serve(&config, STYLE, "text/css; charset=utf-8")
}

/// The page's settings.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Settings {
    /// How often the page polls, in milliseconds.
    poll_interval_ms: u64,
    /// Rows per page of the checks and the history.
    page_size: usize,
}

fn serve(
    config: &ConfigHandle<ConsoleConfig>,
    body: &'static str,
    content_type: &'static str,
) -> Response {
    if !config.load().enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small enough to send each time; `no-store` keeps an old script from outliving an upgrade.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(CONTENT_SECURITY_POLICY, CSP);
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[utoipa::path(
    get,
    path = "/admin/ui/settings",
    tag = "console",
    summary = "The status page's settings",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the settings", body = inline(Settings)),
        (status = 404, description = "`console.enabled` is false"),
    ),
)]
async fn settings(State(config): Config) -> Response {
    let config = config.load();
    if !config.enabled {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut response = axum::Json(Settings {
        poll_interval_ms: millis(config.poll_interval),
        page_size: config.page_size,
    })
    .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(HTML.contains(r#"src="/admin/ui/console.js""#));
        assert!(HTML.contains(r#"href="/admin/ui/console.css""#));
        // No CDN, no inline script (the CSP would block it anyway).
        assert!(!HTML.contains("http://") && !HTML.contains("https://"));
        assert!(!HTML.contains("<script>"));
    }

    #[test]
    fn the_script_keeps_the_token_out_of_urls_and_markup() {
        // The token travels in a header only; data is written with textContent, never as HTML.
        assert!(SCRIPT.contains("sessionStorage"));
        assert!(SCRIPT.contains("Authorization"));
        assert!(!SCRIPT.contains("innerHTML"));
        assert!(!SCRIPT.contains("?token"));
        assert!(!SCRIPT.contains("localStorage"));
    }
}
