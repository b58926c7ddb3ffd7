//! The auth module's OpenAPI fragment (the JWKS and the OIDC login), merged by the router into
//! `GET /admin/openapi.json`. The paths are declared on their handlers, in `http.rs` and
//! `oidc.rs`.

use crate::{http, oidc};

/// The JWKS and OIDC login endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(http::jwks, oidc::login, oidc::callback),
    components(schemas(oidc::ErrorBody))
)]
pub(crate) struct AuthApi;

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::AuthApi;
    use crate::oidc::{OIDC_CALLBACK_PATH, OIDC_LOGIN_PATH};

    #[test]
    fn the_fragment_describes_every_public_path_of_the_module() {
        let spec = AuthApi::openapi();
        let paths: Vec<&str> = spec.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [crate::http::JWKS_PATH, OIDC_CALLBACK_PATH, OIDC_LOGIN_PATH]
        );
    }
}
