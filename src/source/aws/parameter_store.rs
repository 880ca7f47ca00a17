//! Parameter Store reads: GetParameter and GetParametersByPath, always decrypted.

use aws_sdk_ssm::types::Parameter;

use super::clients::AwsClients;
use super::errors::from_sdk;
use crate::source::{ErrorKind, Fetch, SecretBytes, Selector, Service, SourceError, Value};

const SERVICE: Service = Service::ParameterStore;
/// GetParametersByPath allows at most 10 per page.
const PATH_PAGE: i32 = 10;

impl AwsClients {
    /// GetParameter with decryption. A version or label is asked for as `name:selector`, which
    /// AWS accepts for names and ARNs alike; String and StringList values come back as stored,
    /// SecureString values decrypted.
    pub(crate) async fn get_parameter(&self, fetch: &Fetch) -> Result<Value, SourceError> {
        let op = "GetParameter";
        let name = match &fetch.selector {
            Selector::Latest => fetch.key.clone(),
            Selector::ParameterVersion(v) => format!("{}:{v}", fetch.key),
            Selector::Stage(_) | Selector::VersionId(_) => {
                return Err(SourceError {
                    kind: ErrorKind::InvalidRequest,
                    service: SERVICE.into(),
                    operation: op,
                    key: fetch.key.clone(),
                    code: "InvalidSelector".into(),
                    message: format!("{:?} does not apply to ParameterStore", fetch.selector),
                })
            }
        };
        let out = self
            .ssm
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| from_sdk(&e, SERVICE, op, &fetch.key))?;
        out.parameter
            .and_then(parameter_value)
            .ok_or_else(|| SourceError {
                kind: ErrorKind::NotFound,
                service: SERVICE.into(),
                operation: op,
                key: fetch.key.clone(),
                code: "ParameterNotFound".into(),
                message: "the response carried no parameter value".into(),
            })
    }

    /// Every parameter under `path`, decrypted, sorted by name.
    pub(crate) async fn parameters_by_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<Vec<Value>, SourceError> {
        let mut values = Vec::new();
        let mut next_token = None;
        loop {
            let page = self
                .ssm
                .get_parameters_by_path()
                .path(path)
                .recursive(recursive)
                .with_decryption(true)
                .max_results(PATH_PAGE)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(|e| from_sdk(&e, SERVICE, "GetParametersByPath", path))?;
            next_token = page.next_token;
            values.extend(
                page.parameters
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(parameter_value),
            );
            if next_token.is_none() {
                break;
            }
        }
        values.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(values)
    }
}

fn parameter_value(p: Parameter) -> Option<Value> {
    Some(Value {
        service: SERVICE,
        name: p.name?,
        data: SecretBytes(p.value?.into_bytes()),
        binary: false,
        version: p.version.to_string(),
    })
}
