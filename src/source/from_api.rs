//! The store API's role chain in the source layer's types (the API module does not depend on
//! the source layer).

use super::identity::{AssumeRole, SessionTag};

impl From<&crate::api::AssumeRole> for AssumeRole {
    fn from(role: &crate::api::AssumeRole) -> AssumeRole {
        AssumeRole {
            arn: role.arn.clone(),
            external_id: role.external_id.clone(),
            session_name: role.session_name.clone(),
            session_tags: role.session_tags.iter().map(SessionTag::from).collect(),
            transitive_tag_keys: role.transitive_tag_keys.clone(),
        }
    }
}

impl From<&crate::api::SessionTag> for SessionTag {
    fn from(tag: &crate::api::SessionTag) -> SessionTag {
        SessionTag {
            key: tag.key.clone(),
            value: tag.value.clone(),
        }
    }
}
