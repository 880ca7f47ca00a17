//! ServiceAccount tokens from the Kubernetes TokenRequest API, for identities with a web
//! identity (`auth.jwt.serviceAccountRef`).

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::source::{ServiceAccountToken, TokenError, TokenSource};

/// Each token is exchanged with STS at once, so it asks for the shortest validity the API
/// server grants (10 minutes).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 600;

/// Requests tokens through the operator's Kubernetes client (RBAC: `create` on
/// `serviceaccounts/token`).
#[derive(Clone)]
pub struct KubeTokens {
    client: Client,
}

impl KubeTokens {
    pub fn new(client: Client) -> KubeTokens {
        KubeTokens { client }
    }
}

impl std::fmt::Debug for KubeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeTokens")
    }
}

#[async_trait]
impl TokenSource for KubeTokens {
    async fn token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
    ) -> Result<ServiceAccountToken, TokenError> {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audiences.to_vec(),
                expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace);
        let issued = api
            .create_token_request(service_account, &PostParams::default(), &request)
            .await
            .map_err(|e| TokenError(describe(&e)))?;
        match issued.status.map(|s| s.token) {
            Some(token) if !token.is_empty() => Ok(ServiceAccountToken::new(token)),
            _ => Err(TokenError("the API server returned no token".into())),
        }
    }
}

/// The API server's own words for API errors (`serviceaccounts "x" not found`), the client's
/// otherwise. Neither carries a token: the request has none and no response was decoded.
fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!(
            "{} ({}, HTTP {})",
            status.message, status.reason, status.code
        ),
        other => other.to_string(),
    }
}
