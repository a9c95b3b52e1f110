//! The application roles of the Defender API's permission catalogue and what a caller holding
//! them may do.

use iocd_domain::Actor;
use iocd_store::Scope;

/// Application roles of the Defender API's permission catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads all of the tenant's indicators.
    ReadAll,
    /// Creates indicators; reads, updates and deletes only the ones it created.
    ReadWrite,
    /// Manages all of the tenant's indicators.
    ReadWriteAll,
    /// iocd's own: may use the emulator controls (`/_iocd/…`). Not a Defender role.
    IocdAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::ReadAll,
        Role::ReadWrite,
        Role::ReadWriteAll,
        Role::IocdAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadAll => "Ti.Read.All",
            Role::ReadWrite => "Ti.ReadWrite",
            Role::ReadWriteAll => "Ti.ReadWrite.All",
            Role::IocdAdmin => "Iocd.Admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Roles that may write (submit, import, delete).
pub const WRITE_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite];
/// Roles that may use the emulator controls (`/_iocd/…`).
pub const ADMIN_ROLES: &[Role] = &[Role::IocdAdmin];
/// Roles that may read.
pub const READ_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite, Role::ReadAll];

/// An authenticated caller of the API: an app of a tenant with its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    /// The application's client id (`createdBy`).
    pub client_id: String,
    /// The application's display name (`createdByDisplayName`).
    pub display_name: String,
    pub roles: Vec<Role>,
}

/// The caller holds none of the roles an operation requires (a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Missing application roles. API required roles: {}", required.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
pub struct MissingRoles {
    pub required: Vec<Role>,
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), MissingRoles> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        Err(MissingRoles {
            required: roles.to_vec(),
        })
    }

    /// The indicators this caller may read: all of the tenant's with `Ti.Read.All` or
    /// `Ti.ReadWrite.All`, otherwise only those it created.
    pub fn read_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadAll) || self.roles.contains(&Role::ReadWriteAll))
    }

    /// The indicators this caller may change: all of the tenant's with `Ti.ReadWrite.All`,
    /// otherwise only those it created.
    pub fn write_scope(&self) -> Scope {
        self.scope(self.roles.contains(&Role::ReadWriteAll))
    }

    fn scope(&self, tenant_wide: bool) -> Scope {
        Scope {
            tenant_id: self.tenant_id.clone(),
            owner: if tenant_wide {
                None
            } else {
                Some(self.client_id.clone())
            },
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.client_id.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("ti.readwrite"), None);
    }

    #[test]
    fn a_missing_role_names_every_role_that_would_do() {
        let reader = Caller {
            tenant_id: "t".into(),
            client_id: "c".into(),
            display_name: "d".into(),
            roles: vec![Role::ReadAll],
        };
        assert!(reader.require(READ_ROLES).is_ok());
        let refusal = reader.require(WRITE_ROLES).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "Missing application roles. API required roles: Ti.ReadWrite.All, Ti.ReadWrite"
        );
        assert_eq!(reader.read_scope().owner, None);
        assert_eq!(reader.write_scope().owner.as_deref(), Some("c"));
    }
}
