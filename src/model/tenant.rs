//! Tenant identifiers. A tenant ID becomes the first segment of every object key, so it
//! is restricted to characters that can never change a key's shape.

use std::fmt;

pub const DEFAULT_TENANT: &str = "default";
const MAX_LEN: usize = 150;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant id must not be empty")]
    Empty,
    #[error("tenant id too long: {0} > {MAX_LEN} bytes")]
    TooLong(usize),
    #[error("tenant id may contain only ASCII letters, digits, '-' and '_' (found {0:?})")]
    BadChar(char),
}

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(String);

impl Tenant {
    pub fn new(id: &str) -> Result<Self, TenantError> {
        if id.is_empty() {
            return Err(TenantError::Empty);
        }
        if id.len() > MAX_LEN {
            return Err(TenantError::TooLong(id.len()));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(TenantError::BadChar(bad));
        }
        Ok(Self(id.to_owned()))
    }

    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tenant({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_anything_that_could_change_a_key() {
        for bad in ["", "a/b", "..", ".", "a%2fb", "a b", "é", "a\\b", "a.b"] {
            assert!(Tenant::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Tenant::new(&"x".repeat(151)).is_err());
        for good in ["default", "team-a", "Org_42"] {
            assert_eq!(Tenant::new(good).unwrap().as_str(), good);
        }
    }
}
