//! Over HTTP (router + httpserver): the JWKS endpoint, the guard layers and extractor, and the
//! access policy granting `/admin/*` and health details by role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::routing::get;
use modular_auth::{Auth, Authenticated};
use modular_core::http::RouteRegistry;
use modular_core::{BoxError, InitContext, Module};
use modular_httpserver::{HttpServerHandle, HttpServerModule};
use modular_router::RouterModule;
use serde_json::{Value, json};
use support::*;

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef0123456789";

/// Contributes `/ops` (role ops), `/orders` (permission orders:read) and `/me` (any caller).
struct App;

#[modular_core::async_trait]
impl Module for App {
    fn name(&self) -> &str {
        "app"
    }

    fn dependencies(&self) -> Vec<String> {
        vec!["auth".to_owned()]
    }

    async fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<(), BoxError> {
        let auth = (*ctx.services().require::<Auth>()?).clone();
        let routes = RouteRegistry::shared(ctx.services());
        let who = |Authenticated(p): Authenticated| async move { p.subject };
        routes.add_with_paths(
            "app",
            axum::Router::new()
                .route("/ops", get(who).layer(auth.require_role("ops")))
                .route(
                    "/orders",
                    get(who).layer(auth.require_permission("orders:read")),
                )
                .route("/me", get(who).layer(auth.require_authenticated()))
                .route("/whoami", get(who).layer(auth.layer())),
            vec![
                "/ops".into(),
                "/orders".into(),
                "/me".into(),
                "/whoami".into(),
            ],
        );
        Ok(())
    }
}

struct Server {
    app: modular_core::Application,
    base: String,
    auth: Auth,
    client: reqwest::Client,
}

async fn serve(extra: Value) -> Server {
    let mut config = section(json!({
        "auth": {
            "signing_key": "ec",
            "keys": { "ec": { "algorithm": "ES256", "private_key_file": fixture("ec.pem") } },
            "admin_roles": ["ops"],
            "health_details_roles": ["sre"],
        },
        "admin": { "token": ADMIN_TOKEN },
        "httpserver": { "host": "127.0.0.1", "port": 0, "drain_delay": "0s" },
    }));
    merge(&mut config, extra);
    let mut app = builder(config)
        .module(App)
        .module(RouterModule::new())
        .module(HttpServerModule::new())
        .build()
        .await
        .unwrap();
    app.start().await.unwrap();
    let addr = app
        .services()
        .require::<HttpServerHandle>()
        .unwrap()
        .local_addr()
        .unwrap();
    let auth = (*app.services().require::<Auth>().unwrap()).clone();
    Server {
        app,
        base: format!("http://{addr}"),
        auth,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

impl Server {
    async fn get(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    fn token(&self, roles: &[&str], permissions: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let permissions: Vec<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
        self.auth.issue_access("ada", &roles, &permissions).unwrap()
    }
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn the_jwks_endpoint_publishes_the_signing_key() {
    let server = serve(json!({})).await;
    let (status, _, body) = server.get("/.well-known/jwks.json", &[]).await;
    assert_eq!(status, 200, "{body}");
    let jwks: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "ec");
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private part: {body}"
    );
    let mut server = server;
    server.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_guards_answer_401_with_a_challenge_and_403_with_json() {
    let mut server = serve(json!({})).await;
    let (status, headers, body) = server.get("/ops", &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"modular\"");
    let (status, headers, body) = server.get("/ops", &bearer("a.b.c")).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let (status, headers, body) = server
        .get("/ops", &bearer(&server.token(&["user"], &[])))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["role"], "ops");
    let (status, _, body) = server
        .get("/ops", &bearer(&server.token(&["ops"], &[])))
        .await;
    assert_eq!((status, body.as_str()), (200, "ada"));
    let (status, _, _) = server
        .get("/orders", &bearer(&server.token(&["ops"], &[])))
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = server
        .get("/orders", &bearer(&server.token(&[], &["orders:read"])))
        .await;
    assert_eq!((status, body.as_str()), (200, "ada"));
    let (status, _, body) = server.get("/me", &bearer(&server.token(&[], &[]))).await;
    assert_eq!((status, body.as_str()), (200, "ada"));
    server.app.stop().await.unwrap();
}

#[tokio::test]
async fn the_extractor_accepts_a_session_cookie_until_the_session_is_revoked() {
    let mut server = serve(json!({})).await;
    let session = server
        .auth
        .create_session("grace", &[], None)
        .await
        .unwrap();
    let cookie = vec![("cookie", format!("other=1; modular_session={}", session.id))];
    let (status, _, body) = server.get("/whoami", &cookie).await;
    assert_eq!((status, body.as_str()), (200, "grace"));
    let (status, _, _) = server.get("/me", &cookie).await;
    assert_eq!(status, 200);
    server.auth.revoke_session(&session.id).await.unwrap();
    let (status, headers, _) = server.get("/whoami", &cookie).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let (status, _, _) = server.get("/whoami", &[]).await;
    assert_eq!(status, 401);
    server.app.stop().await.unwrap();
}

#[tokio::test]
async fn a_role_in_admin_roles_reaches_the_admin_endpoints_besides_the_admin_token() {
    let mut server = serve(json!({})).await;
    let ops = server.token(&["ops"], &[]);
    let (status, _, body) = server.get("/admin/config", &bearer(&ops)).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains(SECRET) && !body.contains(ADMIN_TOKEN));
    let (status, _, _) = server.get("/admin/config", &bearer(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    let (status, _, _) = server
        .get("/admin/config", &bearer(&server.token(&["user"], &[])))
        .await;
    assert_eq!(status, 403);
    let (status, _, _) = server.get("/admin/config", &[]).await;
    assert_eq!(status, 401);
    let (status, _, _) = server
        .get("/admin/config", &bearer("wrong-opaque-token-0123456789"))
        .await;
    assert_eq!(status, 403);
    // Roles are dynamic: ops no longer administers once admin_roles names only sre.
    server
        .app
        .set_override("auth.admin_roles", json!(["sre"]))
        .await
        .unwrap();
    let (status, _, _) = server.get("/admin/config", &bearer(&ops)).await;
    assert_eq!(status, 403);
    server.app.stop().await.unwrap();
}

fn messages(body: &str) -> bool {
    let body: Value = serde_json::from_str(body).unwrap();
    body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c.get("message").is_some_and(|m| !m.is_null()))
}

#[tokio::test]
async fn a_role_in_health_details_roles_sees_health_details() {
    let mut server = serve(json!({})).await;
    let (_, _, anonymous) = server.get("/health", &[]).await;
    assert!(!messages(&anonymous), "{anonymous}");
    let (_, _, user) = server
        .get("/health", &bearer(&server.token(&["user"], &[])))
        .await;
    assert!(!messages(&user), "{user}");
    let (_, _, sre) = server
        .get("/health", &bearer(&server.token(&["sre"], &[])))
        .await;
    assert!(messages(&sre), "{sre}");
    let (_, _, ops) = server
        .get("/health", &bearer(&server.token(&["ops"], &[])))
        .await;
    assert!(messages(&ops), "admin roles see details too: {ops}");
    server
        .app
        .set_override("auth.health_details_roles", json!([]))
        .await
        .unwrap();
    let (_, _, sre) = server
        .get("/health", &bearer(&server.token(&["sre"], &[])))
        .await;
    assert!(!messages(&sre), "{sre}");
    server.app.stop().await.unwrap();
}
