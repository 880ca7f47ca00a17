//! Kubernetes ServiceAccount tokens, exchanged with sts:AssumeRoleWithWebIdentity. The source
//! layer asks a [`TokenSource`] for a token whenever it needs new credentials; the controller's
//! implementation calls the TokenRequest API, so the source layer never talks to Kubernetes.

use std::fmt;

use async_trait::async_trait;

/// The audience of a token when a web identity names none: what STS expects by default.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";

/// A ServiceAccount token (a JWT). `Debug` never shows it, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceAccountToken(String);

impl ServiceAccountToken {
    pub fn new(token: String) -> Self {
        ServiceAccountToken(token)
    }

    /// The token itself: only for the STS request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceAccountToken(<redacted>)")
    }
}

/// Why no token was issued: the Kubernetes error (never a token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Issues ServiceAccount tokens.
#[async_trait]
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// A new token of `namespace/service_account` for `audiences` (never empty).
    async fn token(
        &self,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
    ) -> Result<ServiceAccountToken, TokenError>;
}

/// For registries built without a Kubernetes client: every request fails.
#[derive(Debug)]
pub struct NoTokenSource;

#[async_trait]
impl TokenSource for NoTokenSource {
    async fn token(
        &self,
        _namespace: &str,
        _service_account: &str,
        _audiences: &[String],
    ) -> Result<ServiceAccountToken, TokenError> {
        Err(TokenError(
            "this process has no Kubernetes client to request ServiceAccount tokens".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_in_debug() {
        let token = ServiceAccountToken::new("eyJhbGciOi.secret-payload.sig".into());
        let shown = format!("{token:?} {:?}", Some(&token));
        assert!(!shown.contains("secret-payload"), "{shown}");
        assert_eq!(token.expose(), "eyJhbGciOi.secret-payload.sig");
    }
}
